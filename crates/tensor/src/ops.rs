//! `+ - * /` and unary `-` as sugar over the fallible methods.
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
            /// # Panics
            /// When the shapes do not broadcast.
            #[track_caller]
            fn $method(self, rhs: Tensor<E>) -> Tensor<E> {
                <&Tensor<E> as $trait<&Tensor<E>>>::$method(&self, &rhs)
            }
        }
        impl<E: Float> $trait<&Tensor<E>> for Tensor<E> {
            type Output = Tensor<E>;
            /// # Panics
            /// When the shapes do not broadcast.
            #[track_caller]
            fn $method(self, rhs: &Tensor<E>) -> Tensor<E> {
                <&Tensor<E> as $trait<&Tensor<E>>>::$method(&self, rhs)
            }
        }
        impl<E: Float> $trait<Tensor<E>> for &Tensor<E> {
            type Output = Tensor<E>;
            /// # Panics
            /// When the shapes do not broadcast.
            #[track_caller]
            fn $method(self, rhs: Tensor<E>) -> Tensor<E> {
                <&Tensor<E> as $trait<&Tensor<E>>>::$method(self, &rhs)
            }
        }
        impl<E: Float> $trait<E> for &Tensor<E> {
            type Output = Tensor<E>;
            fn $method(self, rhs: E) -> Tensor<E> {
                self.$scalar(rhs)
            }
        }
        impl<E: Float> $trait<E> for Tensor<E> {
            type Output = Tensor<E>;
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
    fn neg(self) -> Tensor<E> {
        Tensor::neg(self)
    }
}

impl<E: Float> Neg for Tensor<E> {
    type Output = Tensor<E>;
    fn neg(self) -> Tensor<E> {
        Tensor::neg(&self)
    }
}

macro_rules! scalar_lhs {
    ($t:ty) => {
        impl Add<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn add(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                rhs.add_scalar(self)
            }
        }
        impl Sub<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn sub(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                rhs.rsub_scalar(self)
            }
        }
        impl Mul<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn mul(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                rhs.mul_scalar(self)
            }
        }
        impl Div<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn div(self, rhs: &Tensor<$t>) -> Tensor<$t> {
                rhs.map(|x| self / x)
            }
        }
    };
}

scalar_lhs!(f32);
scalar_lhs!(f64);
