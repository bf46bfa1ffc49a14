//! dalab-nn: building blocks on tch shared by the method crates.
//!
//! - [`grl`]: gradient reversal.
//! - [`backbone`]: feature extractors built from the `model:` section ([`BackboneConfig`]).
//! - [`init`]: `model.init`, TF-slim's Xavier initialisation for papers whose code uses it.
//! - [`heads`]: the bottleneck + classifier head and the domain discriminator.
//! - [`mmd`]: differentiable MK-MMD and JMMD (tested against dalab-metrics).
//! - [`losses`]: CORAL loss, entropy, CDAN's multilinear maps.
//! - [`method`]: [`HeadMethod`], `CE + λ·T` on the backbone and a classifier head, for single-loss methods
//!   ([`HeadNet::into_method`] for a single loss of another form).

pub mod backbone;
pub mod grl;
pub mod heads;
pub mod init;
pub mod losses;
pub mod method;
pub mod mmd;

pub use backbone::{Activation, BackboneConfig, build_backbone};
pub use grl::grad_reverse;
pub use heads::{ClassifierHead, Discriminator, DiscriminatorConfig, HeadConfig, Layer, Pair, batch_norm1d};
pub use init::Init;
pub use losses::{RandomizedMultilinear, coral_loss, entropy, multilinear};
pub use method::{HeadMethod, HeadNet, NetLoss, Transfer, backbone_layers, copy_prefix, freeze_prefixes};
pub use mmd::{Bandwidth, Estimator, KernelConfig, MmdConfig, jmmd2, mmd2};
