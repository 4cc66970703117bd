//! `+ - * /` and unary `-` as sugar over the fallible methods; each has the
//! formula, derivative and PyTorch counterpart of its method:
//!
//! - `a + b`, `a - b`, `a * b`, `a / b` between tensors (owned or borrowed):
//!   [`Tensor::add`], [`Tensor::sub`], [`Tensor::mul`], [`Tensor::div`],
//!   with broadcasting (PyTorch's operators of the same spelling);
//! - `x + c`, `x - c`, `x * c`, `x / c` with a scalar `c` of the element
//!   type: [`Tensor::add_scalar`], [`Tensor::sub_scalar`],
//!   [`Tensor::mul_scalar`], [`Tensor::div_scalar`];
//! - `c + &x`, `c - &x`, `c * &x`, `c / &x` for `f32` and `f64`: the same,
//!   with `c - x` as [`Tensor::rsub_scalar`] and `c / x` elementwise
//!   (derivative −c/x²);
//! - `-x`: [`Tensor::neg`].
//!
//! ```
//! use tapir_tensor::Tensor;
//! let a = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?;
//! let b = Tensor::<f32>::from_vec(vec![1.0, 2.0], [2])?;
//! assert_eq!((&a + &b).to_vec(), [2.0, 4.0, 4.0, 6.0]);
//! assert_eq!((&a - &b).to_vec(), [0.0, 0.0, 2.0, 2.0]);
//! assert_eq!((&a * &b).to_vec(), [1.0, 4.0, 3.0, 8.0]);
//! assert_eq!((&a / &b).to_vec(), [1.0, 1.0, 3.0, 2.0]);
//! assert_eq!((&a * 2.0 - 1.0).to_vec(), [1.0, 3.0, 5.0, 7.0]);
//! assert_eq!((12.0 / &a).to_vec(), [12.0, 6.0, 4.0, 3.0]);
//! assert_eq!((-&b).to_vec(), [-1.0, -2.0]);
//! # Ok::<(), tapir_tensor::Error>(())
//! ```
//!
//! # Panics
//! Binary operators between tensors panic when the shapes do not broadcast,
//! with the message of the matching method (`add`, `sub`, `mul`, `div`);
//! use the methods to get a `Result` instead.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::float::Float;
use crate::tensor::Tensor;

macro_rules! binop {
    ($trait:ident, $method:ident, $scalar:ident) => {
        impl<E: Float> $trait<&Tensor<E>> for &Tensor<E> {
            type Output = Tensor<E>;
            /// The method of the same name (`add`, `sub`, `mul` or `div`),
            /// with broadcasting; see the [module docs](crate::ops).
            ///
            /// # Panics
            /// When the shapes do not broadcast.
            #[track_caller]
            fn $method(self, rhs: &Tensor<E>) -> Tensor<E> {
                match Tensor::$method(self, rhs) {
                    Ok(t) => t,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        impl<E: Float> $trait<Tensor<E>> for Tensor<E> {
            type Output = Tensor<E>;
            /// The method of the same name (`add`, `sub`, `mul` or `div`),
            /// with broadcasting; see the [module docs](crate::ops).
            ///
            /// # Panics
            /// When the shapes do not broadcast.
            #[track_caller]
            fn $method(self, rhs: Tensor<E>) -> Tensor<E> {
                <&Tensor<E> as $trait<&Tensor<E>>>::$method(&self, &rhs)
            }
        }
        impl<E: Float> $trait<&Tensor<E>> for Tensor<E> {
            type Output = Tensor<E>;
            /// The method of the same name (`add`, `sub`, `mul` or `div`),
            /// with broadcasting; see the [module docs](crate::ops).
            ///
            /// # Panics
            /// When the shapes do not broadcast.
            #[track_caller]
            fn $method(self, rhs: &Tensor<E>) -> Tensor<E> {
                <&Tensor<E> as $trait<&Tensor<E>>>::$method(&self, rhs)
            }
        }
        impl<E: Float> $trait<Tensor<E>> for &Tensor<E> {
            type Output = Tensor<E>;
            /// The method of the same name (`add`, `sub`, `mul` or `div`),
            /// with broadcasting; see the [module docs](crate::ops).
            ///
            /// # Panics
            /// When the shapes do not broadcast.
            #[track_caller]
            fn $method(self, rhs: Tensor<E>) -> Tensor<E> {
                <&Tensor<E> as $trait<&Tensor<E>>>::$method(self, &rhs)
            }
        }
        impl<E: Float> $trait<E> for &Tensor<E> {
            type Output = Tensor<E>;
            /// The scalar method (`add_scalar`, `sub_scalar`, `mul_scalar` or
            /// `div_scalar`); see the [module docs](crate::ops).
            fn $method(self, rhs: E) -> Tensor<E> {
                self.$scalar(rhs)
            }
        }
        impl<E: Float> $trait<E> for Tensor<E> {
            type Output = Tensor<E>;
            /// The scalar method (`add_scalar`, `sub_scalar`, `mul_scalar` or
            /// `div_scalar`); see the [module docs](crate::ops).
            fn $method(self, rhs: E) -> Tensor<E> {
                self.$scalar(rhs)
            }
        }
    };
}

binop!(Add, add, add_scalar);
binop!(Sub, sub, sub_scalar);
binop!(Mul, mul, mul_scalar);
binop!(Div, div, div_scalar);

impl<E: Float> Neg for &Tensor<E> {
    type Output = Tensor<E>;
    /// −x, as [`Tensor::neg`] (derivative −1; PyTorch's unary `-`).
    fn neg(self) -> Tensor<E> {
        Tensor::neg(self)
    }
}

impl<E: Float> Neg for Tensor<E> {
    type Output = Tensor<E>;
    /// −x, as [`Tensor::neg`] (derivative −1; PyTorch's unary `-`).
    fn neg(self) -> Tensor<E> {
        Tensor::neg(&self)
    }
}

macro_rules! scalar_lhs {
    ($t:ty) => {
        impl Add<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            /// c + x, as [`Tensor::add_scalar`].
            fn add(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                rhs.add_scalar(self)
            }
        }
        impl Sub<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            /// c − x, as [`Tensor::rsub_scalar`] (derivative −1).
            fn sub(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                rhs.rsub_scalar(self)
            }
        }
        impl Mul<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            /// c·x, as [`Tensor::mul_scalar`].
            fn mul(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                rhs.mul_scalar(self)
            }
        }
        impl Div<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            /// c / x, elementwise (derivative −c/x²; PyTorch's `c / x`).
            fn div(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                rhs.map(|x| self / x)
            }
        }
    };
}

scalar_lhs!(f32);
scalar_lhs!(f64);
