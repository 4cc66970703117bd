//! The operators `+ - * /` and unary `-` on Vars: sugar over the methods,
//! panicking with their error message.

use tapir_tensor::Float;

use crate::var::Var;

macro_rules! var_binop {
    ($trait:ident, $method:ident, $scalar:ident) => {
        impl<'t, E: Float> std::ops::$trait<&Var<'t, E>> for &Var<'t, E> {
            type Output = Var<'t, E>;
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
            /// # Panics
            /// When the shapes do not broadcast or the tapes differ.
            #[track_caller]
            fn $method(self, rhs: Var<'t, E>) -> Var<'t, E> {
                <&Var<'t, E> as std::ops::$trait<&Var<'t, E>>>::$method(&self, &rhs)
            }
        }
        impl<'t, E: Float> std::ops::$trait<&Var<'t, E>> for Var<'t, E> {
            type Output = Var<'t, E>;
            /// # Panics
            /// When the shapes do not broadcast or the tapes differ.
            #[track_caller]
            fn $method(self, rhs: &Var<'t, E>) -> Var<'t, E> {
                <&Var<'t, E> as std::ops::$trait<&Var<'t, E>>>::$method(&self, rhs)
            }
        }
        impl<'t, E: Float> std::ops::$trait<E> for &Var<'t, E> {
            type Output = Var<'t, E>;
            fn $method(self, rhs: E) -> Var<'t, E> {
                self.$scalar(rhs)
            }
        }
        impl<'t, E: Float> std::ops::$trait<E> for Var<'t, E> {
            type Output = Var<'t, E>;
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
    fn neg(self) -> Var<'t, E> {
        Var::neg(self)
    }
}

impl<'t, E: Float> std::ops::Neg for Var<'t, E> {
    type Output = Var<'t, E>;
    fn neg(self) -> Var<'t, E> {
        Var::neg(&self)
    }
}
