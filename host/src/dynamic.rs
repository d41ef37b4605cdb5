//! Calling any export by name with dynamic values, for tools (the CLI's
//! `call`) and tests; the typed faces are the way for Rust embedders.

use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{ComponentExportIndex, Val};

use crate::plugin::Plugin;
use crate::{Error, Result};

/// An exported function: where it lives and its type.
#[derive(Clone)]
pub struct ExportedFunc {
    /// The exported interface holding it, if it is not a top-level export.
    pub interface: Option<String>,
    /// The function's name.
    pub name: String,
    /// Its parameter and result types.
    pub ty: ComponentFunc,
}

impl ExportedFunc {
    /// `interface#name`, or just `name` at the top level.
    pub fn qualified_name(&self) -> String {
        match &self.interface {
            Some(i) => format!("{i}#{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Exports that language toolchains add for their own use (pre-initialising
/// the interpreter at build time), not for callers: `(interface, function,
/// parameter names, toolchain)`. Matched by all three, so a plugin's own
/// `init` with other parameters stays visible.
const TOOLCHAIN_EXPORTS: &[(Option<&str>, &str, &[&str], &str)] = &[
    (
        Some("exports"),
        "init",
        &["app-name", "symbols", "stub-wasi"],
        "componentize-py",
    ),
    (
        None,
        "init",
        &["shim", "script", "entry-path", "disable-gc"],
        "componentize-qjs",
    ),
];

impl ExportedFunc {
    /// The toolchain that added this export for its own use, if it is one
    /// of those ([`Plugin::functions`] leaves them out, and they cannot be
    /// called by name).
    pub fn toolchain_internal(&self) -> Option<&'static str> {
        TOOLCHAIN_EXPORTS
            .iter()
            .find(|(interface, name, params, _)| {
                self.interface.as_deref() == *interface
                    && self.name == *name
                    && self.ty.params().map(|(n, _)| n).eq(params.iter().copied())
            })
            .map(|(.., toolchain)| *toolchain)
    }
}

impl std::fmt::Debug for ExportedFunc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.qualified_name())
    }
}

impl Plugin {
    /// Every exported function a caller may call, top-level ones first
    /// (not the exports a language toolchain adds for itself, see
    /// [`ExportedFunc::toolchain_internal`]).
    pub fn functions(&self) -> Vec<ExportedFunc> {
        let engine = self.engine();
        let ty = self.component().component_type();
        let mut top = Vec::new();
        let mut nested = Vec::new();
        for (name, item) in ty.exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(f) => top.push(ExportedFunc {
                    interface: None,
                    name: name.to_string(),
                    ty: f,
                }),
                ComponentItem::ComponentInstance(inst) => {
                    for (fname, item) in inst.exports(engine) {
                        if let ComponentItem::ComponentFunc(f) = item.ty {
                            nested.push(ExportedFunc {
                                interface: Some(name.to_string()),
                                name: fname.to_string(),
                                ty: f,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        top.extend(nested);
        top.retain(|f| f.toolchain_internal().is_none());
        top
    }

    /// The function `name` refers to: `interface#func`, or a bare function
    /// name found at the top level or in exactly one exported interface.
    ///
    /// # Errors
    /// [`Error::NoSuchExport`] when there is none (or more than one).
    pub fn function(&self, name: &str) -> Result<ExportedFunc> {
        let all = self.functions();
        let matches: Vec<&ExportedFunc> = match name.split_once('#') {
            Some((iface, func)) => all
                .iter()
                .filter(|f| f.name == func && f.interface.as_deref() == Some(iface))
                .collect(),
            None => all.iter().filter(|f| f.name == name).collect(),
        };
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(Error::NoSuchExport {
                plugin: self.name().to_string(),
                function: name.to_string(),
                available: all.iter().map(ExportedFunc::qualified_name).collect(),
            }),
        }
    }

    /// Calls export `name` with `args` as a unit of work (in a fresh instance,
    /// or an idle one when the plugin's manifest allows [`Reuse`](crate::Reuse)).
    ///
    /// # Errors
    /// [`Error::NoSuchExport`]; [`Error::BadArguments`] for the wrong number
    /// of arguments; the call errors of [`Error`] (values of the wrong type
    /// are refused by wasmtime before the guest runs, and reported as a
    /// trap of the call).
    pub fn call_dynamic(&self, name: &str, args: &[Val]) -> Result<Vec<Val>> {
        let func = self.function(name)?;
        let params: Vec<_> = func.ty.params().map(|(_, t)| t).collect();
        if params.len() != args.len() {
            return Err(Error::BadArguments {
                plugin: self.name().to_string(),
                function: func.qualified_name(),
                message: format!("expected {} arguments, got {}", params.len(), args.len()),
            });
        }
        let n_results = func.ty.results().len();
        let component = self.component().clone();
        self.call_instance(&func.qualified_name(), |store, instance| {
            let mut index: Option<ComponentExportIndex> = None;
            if let Some(iface) = &func.interface {
                index = component.get_export_index(None, iface.as_str());
            }
            let export = component
                .get_export_index(index.as_ref(), func.name.as_str())
                .ok_or_else(|| wasmtime::format_err!("export {} vanished", func.name))?;
            let f = instance
                .get_func(&mut *store, export)
                .ok_or_else(|| wasmtime::format_err!("{} is not a function", func.name))?;
            let mut results = vec![Val::Bool(false); n_results];
            f.call(&mut *store, args, &mut results)?;
            Ok(results)
        })
    }

    /// [`call_dynamic`](Self::call_dynamic) from async code, on tokio's
    /// blocking pool.
    ///
    /// # Errors
    /// As [`Plugin::call_dynamic`], and [`Error::Join`].
    pub async fn call_dynamic_async(&self, name: &str, args: Vec<Val>) -> Result<Vec<Val>> {
        let (this, name) = (self.clone(), name.to_string());
        tokio::task::spawn_blocking(move || this.call_dynamic(&name, &args)).await?
    }
}
