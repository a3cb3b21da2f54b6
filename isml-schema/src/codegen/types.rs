//! How schema types map to Rust: names, paths, owned and view types,
//! descriptors' type references, and the members of a message or union.

use super::*;

impl Gen<'_> {
    pub(super) fn def(&self, id: TypeId) -> &TypeDef {
        &self.schema.types[id.index()]
    }

    pub(super) fn type_ident(&self, id: TypeId) -> proc_macro2::Ident {
        format_ident!("{}", self.names.types[&id].0)
    }

    pub(super) fn view_ident(&self, id: TypeId) -> proc_macro2::Ident {
        format_ident!("{}", self.names.types[&id].1)
    }

    /// Whether a value of `ty` is length-delimited with a length that takes
    /// a walk to compute: a list of varints or of delimited values, a map, a
    /// message or union.
    fn walked_length(&self, ty: &Type) -> bool {
        match ty {
            Type::Optional(t) => self.walked_length(t),
            Type::List(t) => !matches!(
                **t,
                Type::Bool | Type::U8 | Type::I8 | Type::F32 | Type::F64
            ),
            Type::Map(..) => true,
            Type::Named(id) => match self.derive {
                Some(_) => true,
                None => !matches!(self.def(*id).kind, TypeDefKind::Enum(_)),
            },
            _ => false,
        }
    }

    /// Whether encoding a field of type `ty` without a length pass would
    /// compute some nested length more than once: a walked length inside
    /// another (a list or map of messages or of lists, a message holding
    /// such values). Then `encode` measures first and records the lengths.
    pub(super) fn nested_lengths(&self, ty: &Type) -> bool {
        match ty {
            Type::Optional(t) => self.nested_lengths(t),
            Type::List(t) | Type::Array(t, _) => self.walked_length(t),
            Type::Map(_, v) => self.walked_length(v),
            Type::Named(id) => match (self.derive, &self.def(*id).kind) {
                (Some(_), _) => true,
                (None, TypeDefKind::Message(m)) => {
                    m.fields.iter().any(|f| self.walked_length(&f.ty))
                }
                (None, TypeDefKind::Union(u)) => {
                    u.variants.iter().any(|v| self.walked_length(&v.ty))
                }
                (None, TypeDefKind::Enum(_)) => false,
            },
            _ => false,
        }
    }

    pub(super) fn lazy_ident(&self, id: TypeId) -> proc_macro2::Ident {
        format_ident!("{}", self.names.lazy[&id])
    }

    /// `super::super::common::` from this package to `target`'s package.
    pub(super) fn prefix(&self, target: &str) -> TokenStream {
        if target == self.package {
            return quote!();
        }
        let depth = if self.package.is_empty() {
            0
        } else {
            self.package.split('.').count()
        };
        let supers = (0..depth).map(|_| quote!(super::));
        let segs = target
            .split('.')
            .filter(|s| !s.is_empty())
            .map(|s| ident(&naming::module_name(s)));
        quote!(#(#supers)* #(#segs::)*)
    }

    pub(super) fn type_path(&self, id: TypeId) -> TokenStream {
        if let Some((own, opts)) = self.derive {
            if id == own {
                let n = &opts.ident;
                return quote!(#n);
            }
            return opts
                .externals
                .get(&id)
                .cloned()
                .unwrap_or_else(|| quote!(Self));
        }
        let p = self.prefix(&self.def(id).package);
        let n = self.type_ident(id);
        quote!(#p #n)
    }

    pub(super) fn view_path(&self, id: TypeId) -> TokenStream {
        let p = self.prefix(&self.def(id).package);
        let n = self.view_ident(id);
        quote!(#p #n<'a>)
    }

    /// Whether `from` reaches `to` through fields held by value (not through
    /// `list` or `map`, which live on the heap).
    pub(super) fn reaches(&self, from: TypeId, to: TypeId) -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(t) = stack.pop() {
            if t == to {
                return true;
            }
            if !seen.insert(t) {
                continue;
            }
            let mut push = |ty: &Type| by_value_named(ty, &mut stack);
            match &self.def(t).kind {
                TypeDefKind::Message(m) => m.fields.iter().for_each(|f| push(&f.ty)),
                TypeDefKind::Union(u) => u.variants.iter().for_each(|v| push(&v.ty)),
                TypeDefKind::Enum(_) => {}
            }
        }
        false
    }

    pub(super) fn boxed(&self, container: TypeId, ty: &Type, heap: bool) -> bool {
        match ty {
            Type::Named(t) => !heap && self.reaches(*t, container),
            _ => false,
        }
    }

    /// The owned Rust type of a schema type inside `container`.
    pub(super) fn rust_type(&self, container: TypeId, ty: &Type, heap: bool) -> TokenStream {
        let p = quote!(::isml_runtime::__private);
        match ty {
            Type::Bool => quote!(bool),
            Type::U8 => quote!(u8),
            Type::U16 => quote!(u16),
            Type::U32 => quote!(u32),
            Type::U64 => quote!(u64),
            Type::I8 => quote!(i8),
            Type::I16 => quote!(i16),
            Type::I32 => quote!(i32),
            Type::I64 => quote!(i64),
            Type::F32 => quote!(f32),
            Type::F64 => quote!(f64),
            Type::String => quote!(#p::String),
            Type::Bytes => quote!(#p::Bytes),
            Type::Optional(t) => {
                let inner = self.rust_type(container, t, heap);
                if self.boxed(container, t, heap) {
                    quote!(#p::Option<#p::Box<#inner>>)
                } else {
                    quote!(#p::Option<#inner>)
                }
            }
            Type::List(t) => {
                let inner = self.rust_type(container, t, true);
                quote!(#p::Vec<#inner>)
            }
            Type::Map(k, v) => {
                let k = self.rust_type(container, k, true);
                let v = self.rust_type(container, v, true);
                quote!(#p::BTreeMap<#k, #v>)
            }
            Type::Array(t, n) => {
                let inner = self.rust_type(container, t, heap);
                let n = Literal::usize_unsuffixed(*n as usize);
                quote!([#inner; #n])
            }
            Type::Named(id) => self.type_path(*id),
        }
    }

    /// The view type of a schema type inside `container` (lifetime `'a`).
    pub(super) fn view_type(&self, container: TypeId, ty: &Type, heap: bool) -> TokenStream {
        let p = quote!(::isml_runtime::__private);
        match ty {
            Type::String => quote!(&'a str),
            Type::Bytes => quote!(&'a [u8]),
            Type::Optional(t) => {
                if self.boxed(container, t, heap) {
                    let owned = self.rust_type(container, t, heap);
                    quote!(#p::Option<#p::LazyView<'a, #owned>>)
                } else {
                    let inner = self.view_type(container, t, heap);
                    quote!(#p::Option<#inner>)
                }
            }
            Type::List(t) => {
                let owned = self.rust_type(container, t, true);
                quote!(#p::ListView<'a, #owned>)
            }
            Type::Array(t, _) => {
                // Arrays are held by value: the element type is boxed exactly as the owned field's.
                let owned = self.rust_type(container, t, heap);
                quote!(#p::ListView<'a, #owned>)
            }
            Type::Map(k, v) => {
                let k = self.rust_type(container, k, true);
                let v = self.rust_type(container, v, true);
                quote!(#p::MapView<'a, #k, #v>)
            }
            Type::Named(id) => match self.def(*id).kind {
                TypeDefKind::Enum(_) => self.type_path(*id),
                _ => self.view_path(*id),
            },
            scalar => self.rust_type(container, scalar, heap),
        }
    }

    pub(super) fn type_ref(&self, ty: &Type) -> TokenStream {
        let p = quote!(::isml_runtime::__private::TypeRef);
        match ty {
            Type::Bool => quote!(#p::Bool),
            Type::U8 => quote!(#p::U8),
            Type::U16 => quote!(#p::U16),
            Type::U32 => quote!(#p::U32),
            Type::U64 => quote!(#p::U64),
            Type::I8 => quote!(#p::I8),
            Type::I16 => quote!(#p::I16),
            Type::I32 => quote!(#p::I32),
            Type::I64 => quote!(#p::I64),
            Type::F32 => quote!(#p::F32),
            Type::F64 => quote!(#p::F64),
            Type::String => quote!(#p::String),
            Type::Bytes => quote!(#p::Bytes),
            Type::Optional(t) => {
                let t = self.type_ref(t);
                quote!(#p::Optional(&#t))
            }
            Type::List(t) => {
                let t = self.type_ref(t);
                quote!(#p::List(&#t))
            }
            Type::Map(k, v) => {
                let k = self.type_ref(k);
                let v = self.type_ref(v);
                quote!(#p::Map(&#k, &#v))
            }
            Type::Array(t, n) => {
                let t = self.type_ref(t);
                quote!(#p::Array(&#t, #n))
            }
            Type::Named(id) if self.derive.is_some() => {
                // The kind of a type outside the derive is unknown: ask the type.
                let path = self.type_path(*id);
                quote!(<#path as ::isml_runtime::__private::Reflect>::TYPE_REF)
            }
            Type::Named(id) => {
                let path = self.type_path(*id);
                match self.def(*id).kind {
                    TypeDefKind::Enum(_) => quote!(#p::Enum(#path::descriptor)),
                    _ => quote!(#p::Message(#path::descriptor)),
                }
            }
        }
    }

    pub(super) fn contains_message(&self, ty: &Type) -> bool {
        match ty {
            Type::Optional(t) | Type::List(t) | Type::Array(t, _) => self.contains_message(t),
            Type::Map(k, v) => self.contains_message(k) || self.contains_message(v),
            Type::Named(id) => match self.derive {
                // Validating an enum is a no-op, so unknown kinds can be asked to.
                Some((own, _)) if *id != own => true,
                _ => !matches!(self.def(*id).kind, TypeDefKind::Enum(_)),
            },
            _ => false,
        }
    }

    /// Whether a field or variant of type `ty` needs a validation call: it
    /// holds messages or unions, or its encoding nests one level that a
    /// decoder counts against the limit (wire format §7).
    pub(super) fn needs_validation(&self, ty: &Type) -> bool {
        let inner: &Type = match ty {
            Type::Optional(t) => t,
            t => t,
        };
        self.contains_message(ty)
            || matches!(
                inner,
                Type::F64 | Type::List(_) | Type::Map(..) | Type::Array(..)
            )
    }

    /// `#[automatically_derived]` for the impls a derive macro emits.
    pub(super) fn auto(&self) -> TokenStream {
        if self.derive.is_some() {
            quote!(#[automatically_derived])
        } else {
            quote!()
        }
    }

    /// The std derives of a declared view type; absolute paths in derived
    /// code, which expands among the user's own names.
    pub(super) fn view_derives(&self, default: bool) -> TokenStream {
        match (self.derive.is_some(), default) {
            (false, true) => quote!(#[derive(Debug, Clone, Copy, Default)]),
            (false, false) => quote!(#[derive(Debug, Clone, Copy)]),
            (true, true) => quote!(#[derive(
                ::core::fmt::Debug,
                ::core::clone::Clone,
                ::core::marker::Copy,
                ::core::default::Default
            )]),
            (true, false) => {
                quote!(#[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy)])
            }
        }
    }

    /// The name of the type being emitted.
    pub(super) fn own_ident(&self, id: TypeId) -> proc_macro2::Ident {
        match self.derive {
            Some((_, opts)) => opts.ident.clone(),
            None => self.type_ident(id),
        }
    }

    /// The name of the view type being emitted.
    pub(super) fn own_view_ident(&self, id: TypeId) -> proc_macro2::Ident {
        match self.derive {
            Some((_, opts)) => opts.view_ident.clone(),
            None => self.view_ident(id),
        }
    }

    /// The catch-all variant of an enum or union.
    pub(super) fn unknown_ident(&self) -> proc_macro2::Ident {
        match self.derive.and_then(|(_, o)| o.unknown.clone()) {
            Some(u) => u,
            None => format_ident!("Unknown"),
        }
    }

    /// Visibility of declared helper types.
    pub(super) fn vis(&self) -> TokenStream {
        match self.derive {
            Some((_, opts)) => opts.vis.clone(),
            None => quote!(pub),
        }
    }

    /// Fields or variants with their Rust names and types: chosen by the
    /// generator for schema types, supplied by the derive for derived ones.
    pub(super) fn members<'f>(&self, id: TypeId, fields: &'f [FieldDef]) -> Vec<Member<'f>> {
        if let Some((_, opts)) = self.derive {
            return fields
                .iter()
                .zip(&opts.members)
                .map(|(f, dm)| {
                    let ty = dm.ty.clone();
                    Member {
                        ident: dm.ident.clone(),
                        view_ty: quote!(<#ty as ::isml_runtime::__private::WireView<'a>>::View),
                        ty,
                        field: f,
                    }
                })
                .collect();
        }
        let mut namer = Namer::with_reserved(&["descriptor", "to_owned"]);
        fields
            .iter()
            .map(|f| Member {
                ident: naming::unique_ident(&mut namer, &naming::field_name(&f.name), f.tag),
                ty: self.rust_type(id, &f.ty, false),
                view_ty: self.view_type(id, &f.ty, false),
                field: f,
            })
            .collect()
    }
}
