//! dalab-nn: building blocks on tch shared by the method crates.
//!
//! - [`grl`]: gradient reversal.
//! - [`backbone`]: feature extractors built from the `model:` section ([`BackboneConfig`]).
//! - [`heads`]: classifier and domain-discriminator heads.

pub mod backbone;
pub mod grl;
pub mod heads;

pub use backbone::{Activation, BackboneConfig, build_backbone};
pub use grl::grad_reverse;
pub use heads::{Discriminator, DiscriminatorConfig};
