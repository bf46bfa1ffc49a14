//! Gradient reversal (Ganin & Lempitsky 2015): identity forward, gradient multiplied by −λ backward.
//!
//! tch has no custom autograd functions, so it is written with a detached copy:
//! `y = d + (x − d)·(−λ)` with `d = x.detach()`. Forward, `x − d` is exactly 0, so `y` equals `x` bit for bit;
//! backward, only the `(x − d)·(−λ)` term carries a gradient, which is exactly `−λ·g`.

use tch::Tensor;

/// Identity forward; gradient `−lambda ×` the incoming one.
pub fn grad_reverse(x: &Tensor, lambda: f64) -> Tensor {
    let d = x.detach();
    &d + (x - &d) * (-lambda)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn forward_is_exactly_identity_and_gradient_exactly_minus_lambda() {
        tch::manual_seed(0);
        let mut x = (Tensor::randn([64, 7], (Kind::Float, tch::Device::Cpu)) * 1e3).set_requires_grad(true);
        for lambda in [0.0, 0.37, 1.0, 6.0] {
            let y = grad_reverse(&x, lambda);
            // Exact identity: compare bit patterns via equality of every element.
            assert!(y.equal(&x.detach()), "forward differs from identity for lambda={lambda}");
            // Incoming gradient g (random), so dL/dy = g and dL/dx must be exactly -lambda * g.
            let g = Tensor::randn([64, 7], (Kind::Float, tch::Device::Cpu));
            x.zero_grad();
            (&y * &g).sum(Kind::Float).backward();
            let expected = &g * (-lambda);
            assert!(x.grad().equal(&expected), "gradient is not exactly -lambda*g for lambda={lambda}");
        }
    }
}
