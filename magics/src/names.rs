//! Names in Rust syntax that both body analysis and item extraction need:
//! every identifier of a token stream, and the names a `use` tree brings
//! into scope.

use proc_macro2::{TokenStream, TokenTree};
use syn::ext::IdentExt;

/// Every identifier token in a token stream (recursively; may repeat).
pub(crate) fn collect_idents(tokens: &TokenStream, out: &mut Vec<String>) {
    for tt in tokens.clone() {
        match tt {
            TokenTree::Ident(id) => out.push(id.unraw().to_string()),
            TokenTree::Group(g) => collect_idents(&g.stream(), out),
            _ => {}
        }
    }
}

/// Names a `use` tree brings into scope (`self` in a group names the parent).
pub(crate) fn use_tree_names(tree: &syn::UseTree, out: &mut Vec<String>) {
    fn walk(tree: &syn::UseTree, parent: Option<&syn::Ident>, out: &mut Vec<String>) {
        match tree {
            syn::UseTree::Path(p) => walk(&p.tree, Some(&p.ident), out),
            syn::UseTree::Name(n) if n.ident == "self" => {
                if let Some(parent) = parent {
                    out.push(parent.unraw().to_string());
                }
            }
            syn::UseTree::Name(n) => out.push(n.ident.unraw().to_string()),
            syn::UseTree::Rename(r) => out.push(r.rename.unraw().to_string()),
            syn::UseTree::Glob(_) => {}
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| walk(t, parent, out)),
        }
    }
    walk(tree, None, out);
}
