//! Benchmarks of dalab live in `benches/benches/`; this library is empty.
