//! Benchmarks of dalab live in `benches/`; this library is empty.
