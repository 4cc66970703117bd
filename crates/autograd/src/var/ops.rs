//! The operators `+ - * /` and unary `-` on Vars: sugar over the methods,
//! panicking with their error message (see the `Var` docs for an example).

use tapir_tensor::Float;

use crate::var::Var;

macro_rules! var_binop {
    ($trait:ident, $method:ident, $scalar:ident) => {
        impl<'t, E: Float> std::ops::$trait<&Var<'t, E>> for &Var<'t, E> {
            type Output = Var<'t, E>;
            /// The Var method of the same name as an operator: broadcasting,
            /// with that method's gradient, panicking where it returns an
            /// error.
            ///
            /// # Panics
            /// When the shapes do not broadcast or the tapes differ.
            #[track_caller]
            fn $method(self, rhs: &Var<'t, E>) -> Var<'t, E> {
                match Var::$method(self, rhs) {
                    Ok(v) => v,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        impl<'t, E: Float> std::ops::$trait<Var<'t, E>> for Var<'t, E> {
            type Output = Var<'t, E>;
            /// As the operator on two `&Var`s.
            ///
            /// # Panics
            /// When the shapes do not broadcast or the tapes differ.
            #[track_caller]
            fn $method(self, rhs: Var<'t, E>) -> Var<'t, E> {
                <&Var<'t, E> as std::ops::$trait<&Var<'t, E>>>::$method(&self, &rhs)
            }
        }
        impl<'t, E: Float> std::ops::$trait<&Var<'t, E>> for Var<'t, E> {
            type Output = Var<'t, E>;
            /// As the operator on two `&Var`s.
            ///
            /// # Panics
            /// When the shapes do not broadcast or the tapes differ.
            #[track_caller]
            fn $method(self, rhs: &Var<'t, E>) -> Var<'t, E> {
                <&Var<'t, E> as std::ops::$trait<&Var<'t, E>>>::$method(&self, rhs)
            }
        }
        impl<'t, E: Float> std::ops::$trait<E> for &Var<'t, E> {
            type Output = Var<'t, E>;
            /// The scalar method of the same name (`add_scalar`,
            /// `sub_scalar`, `mul_scalar` or `div_scalar`) as an operator,
            /// with its gradient; it cannot fail.
            fn $method(self, rhs: E) -> Var<'t, E> {
                self.$scalar(rhs)
            }
        }
        impl<'t, E: Float> std::ops::$trait<E> for Var<'t, E> {
            type Output = Var<'t, E>;
            /// As the operator on a `&Var` and a scalar.
            fn $method(self, rhs: E) -> Var<'t, E> {
                self.$scalar(rhs)
            }
        }
    };
}

var_binop!(Add, add, add_scalar);
var_binop!(Sub, sub, sub_scalar);
var_binop!(Mul, mul, mul_scalar);
var_binop!(Div, div, div_scalar);

impl<'t, E: Float> std::ops::Neg for &Var<'t, E> {
    type Output = Var<'t, E>;
    /// −x: [`Var::neg`] (derivative −1).
    fn neg(self) -> Var<'t, E> {
        Var::neg(self)
    }
}

impl<'t, E: Float> std::ops::Neg for Var<'t, E> {
    type Output = Var<'t, E>;
    /// −x of an owned Var: [`Var::neg`].
    fn neg(self) -> Var<'t, E> {
        Var::neg(&self)
    }
}
