//! `#[derive(Module)]` for `tapir_nn::Module`.
//!
//! The derive visits every field of a struct in declaration order, under
//! the field's name (tuple fields under their index), so a parameter's
//! path is the chain of field names that leads to it (`blocks.0.attn.q_proj
//! .weight`), as in PyTorch's `state_dict`. Each field's type must
//! implement `Module`: `Parameter`, `Buffer`, the layers, `Vec`, `Option`
//! and `Box` of modules, and the plain scalars (`usize`, `f32`, `bool`,
//! ...), which hold nothing. `#[module(skip)]` leaves a field out.
//!
//! The float type is the struct's type parameter named `E` or bounded by
//! `Float`, else `f32`; `#[module(float = f64)]` on the struct says it.
//!
//! The generated code names the nn crate as `::tapir_nn` when the package
//! depends on `tapir-nn` directly, else as `::tapir::nn` (a program that
//! depends only on the `tapir` facade); `#[module(crate = path)]` names it
//! otherwise.
#![deny(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields, GenericParam, Type};

/// Implements `tapir_nn::Module` for a struct by visiting its fields. See
/// the crate documentation for the rules.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let float = float_type(input)?;
    let krate = crate_path(input)?;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "#[derive(Module)] works on structs; write `impl Module` by hand for an enum",
        ));
    };
    let mut visits = Vec::new();
    let mut trains = Vec::new();
    let members: Vec<(syn::Member, String, &syn::Field)> = match &data.fields {
        Fields::Named(f) => f
            .named
            .iter()
            .map(|fl| {
                let id = fl.ident.clone().expect("named field");
                let s = id.to_string();
                let s = s.strip_prefix("r#").unwrap_or(&s).to_string();
                (syn::Member::Named(id), s, fl)
            })
            .collect(),
        Fields::Unnamed(f) => f
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, fl)| (syn::Member::Unnamed(i.into()), i.to_string(), fl))
            .collect(),
        Fields::Unit => Vec::new(),
    };
    for (member, label, field) in members {
        if skipped(field)? {
            continue;
        }
        let ty = &field.ty;
        visits.push(quote! {
            {
                let __mark = __path.push(#label);
                <#ty as #krate::Module<#float>>::visit(&self.#member, __path, __f);
                __path.pop(__mark);
            }
        });
        trains.push(quote! {
            <#ty as #krate::Module<#float>>::set_training(&mut self.#member, __training);
        });
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics #krate::Module<#float> for #name #ty_generics #where_clause {
            fn visit(
                &self,
                __path: &mut #krate::Path,
                __f: &mut dyn FnMut(&#krate::Path, #krate::Entry<'_, #float>),
            ) {
                let _ = (&__path, &__f);
                #(#visits)*
            }
            fn set_training(&mut self, __training: bool) {
                let _ = __training;
                #(#trains)*
            }
        }
    })
}

/// The path of the nn crate in the crate being compiled:
/// `#[module(crate = path)]`, else `::tapir_nn` where the package depends
/// on tapir-nn itself (or is it), else `::tapir::nn` (the facade crate).
fn crate_path(input: &DeriveInput) -> syn::Result<syn::Path> {
    for attr in &input.attrs {
        if !attr.path().is_ident("module") {
            continue;
        }
        let mut found = None;
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                found = Some(meta.value()?.parse::<syn::Path>()?);
            } else if meta.path.is_ident("float") {
                let _ = meta.value()?.parse::<Type>()?;
            }
            Ok(())
        })?;
        if let Some(p) = found {
            return Ok(p);
        }
    }
    let own = std::env::var("CARGO_PKG_NAME").is_ok_and(|n| n == "tapir-nn");
    let direct = std::env::var("CARGO_MANIFEST_DIR")
        .ok()
        .and_then(|d| std::fs::read_to_string(std::path::Path::new(&d).join("Cargo.toml")).ok())
        .is_some_and(|m| m.contains("tapir-nn") || m.contains("tapir_nn"));
    Ok(if own || direct {
        syn::parse_quote!(::tapir_nn)
    } else {
        syn::parse_quote!(::tapir::nn)
    })
}

/// Whether a field carries `#[module(skip)]`.
fn skipped(field: &syn::Field) -> syn::Result<bool> {
    let mut skip = false;
    for attr in &field.attrs {
        if !attr.path().is_ident("module") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else {
                Err(meta.error("unknown field option; the one option is #[module(skip)]"))
            }
        })?;
    }
    Ok(skip)
}

/// The float type the impl is for: `#[module(float = T)]`, else the type
/// parameter named `E` or bounded by `Float`, else `f32`.
fn float_type(input: &DeriveInput) -> syn::Result<Type> {
    for attr in &input.attrs {
        if !attr.path().is_ident("module") {
            continue;
        }
        let mut found = None;
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("float") {
                found = Some(meta.value()?.parse::<Type>()?);
                Ok(())
            } else if meta.path.is_ident("crate") {
                let _ = meta.value()?.parse::<syn::Path>()?;
                Ok(())
            } else {
                Err(meta.error("unknown struct option; the options are #[module(float = T)] and #[module(crate = path)]"))
            }
        })?;
        if let Some(t) = found {
            return Ok(t);
        }
    }
    for g in &input.generics.params {
        if let GenericParam::Type(t) = g {
            let bounded = t.bounds.iter().any(|b| match b {
                syn::TypeParamBound::Trait(tb) => {
                    tb.path.segments.last().is_some_and(|s| s.ident == "Float")
                }
                _ => false,
            });
            if bounded || t.ident == "E" {
                let id = &t.ident;
                return Ok(syn::parse_quote!(#id));
            }
        }
    }
    Ok(syn::parse_quote!(f32))
}
