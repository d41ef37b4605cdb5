//! A component's imports, read from its binary before it is compiled, and
//! checked against what the runtime offers and the manifest grants.
//!
//! Compiling a component built by componentize-py (an interpreter and a
//! standard library, ~18 MB) takes tens of seconds; reading its import
//! section takes microseconds. So a component that imports something it may
//! not have is refused before any compile, with one line that names the
//! import and what to do about it. The linker still type-checks every import
//! after the compile: this check decides by names and versions, the linker
//! by types.

use wasmparser::{Chunk, Parser, Payload};

use crate::capability::{Gate, Registry};
use crate::manifest::Manifest;
use crate::{Error, Result};

/// The names of a component's top-level imports of instances and functions
/// (`plinth:database/users@0.1.0`), as its binary spells them; type imports
/// (a world's `use`) are left out. Nested modules and components are skipped
/// unread: their imports are satisfied inside the component.
///
/// # Errors
/// A message when the bytes are not a component (a core module, or not
/// WebAssembly at all) or its sections are malformed.
pub fn component_imports(bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
    let mut parser = Parser::new(0);
    let mut rest = bytes;
    let mut imports = Vec::new();
    loop {
        let (consumed, payload) = match parser.parse(rest, true).map_err(|e| e.to_string())? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => return Err("the component ends early".into()),
        };
        rest = rest.get(consumed..).ok_or("the component ends early")?;
        match payload {
            Payload::Version { encoding, .. } if encoding != wasmparser::Encoding::Component => {
                return Err(
                    "a core WebAssembly module, not a component: build for wasm32-wasip2 \
                     (or wrap it with `wasm-tools component new`)"
                        .into(),
                );
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    let import = import.map_err(|e| e.to_string())?;
                    // A world's `use` of a type imports the type by itself
                    // (`user`, bounded to equal the interface's): a name
                    // the linker need not define, not a capability.
                    if matches!(import.ty, wasmparser::ComponentTypeRef::Type(_)) {
                        continue;
                    }
                    imports.push(import.name.name.to_string());
                }
            }
            // The parent parser has moved past a nested module or component;
            // its bytes are skipped here, never parsed.
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                rest = rest
                    .get(unchecked_range.len()..)
                    .ok_or("a nested module runs past the end of the component")?;
            }
            Payload::End(_) => return Ok(imports),
            _ => {}
        }
    }
}

/// Checks each import against the registry (is it offered, at a compatible
/// version?) and the manifest (is it granted?), in the component's order;
/// the first that fails is the error.
pub(crate) fn check(registry: &Registry, manifest: &Manifest, imports: &[String]) -> Result<()> {
    let plugin = || manifest.name.clone();
    for import in imports {
        let (bare, version) = match import.split_once('@') {
            Some((bare, version)) => (bare, version),
            None => (import.as_str(), ""),
        };
        let Some(interface) = registry.find(import) else {
            return Err(Error::UnknownImport {
                plugin: plugin(),
                import: import.clone(),
                hint: unknown_hint(registry, bare),
            });
        };
        if !interface.version_compatible(version) {
            return Err(Error::IncompatibleImport {
                plugin: plugin(),
                import: import.clone(),
                offered: interface.version,
            });
        }
        if interface.gate != Gate::Open && manifest.grants.get(interface).is_none() {
            let hint = match interface.gate {
                Gate::Manifest => format!(
                    "add `\"{}\" = \"read\"` (or \"read-write\") under [grants] in its manifest, \
                     or import only the interfaces its code calls",
                    interface.name
                ),
                _ => "only the embedder's code can grant it (Manifest::grant)".to_string(),
            };
            return Err(Error::NotGranted {
                plugin: plugin(),
                interface: import.clone(),
                hint,
            });
        }
    }
    Ok(())
}

/// What to do about an import nothing offers.
fn unknown_hint(registry: &Registry, bare: &str) -> String {
    if bare.starts_with("wasi:http/") {
        return "plinth links wasi:http's types and an outgoing-handler that refuses every \
                request (plugins have no network), nothing else; a plugin serves HTTP by \
                exporting wasi:http/incoming-handler, not by importing it"
            .into();
    }
    let package = bare.split_once('/').map_or(bare, |(p, _)| p);
    if package.starts_with("wasi:") {
        return "plinth links WASI 0.2's cli, clocks, filesystem, http, io, random and \
                sockets (with nothing granted), nothing else"
            .into();
    }
    let siblings: Vec<&str> = registry
        .interfaces()
        .map(|i| i.name)
        .filter(|name| name.split_once('/').is_some_and(|(p, _)| p == package))
        .collect();
    if siblings.is_empty() {
        "`plinth plugin interfaces` lists what this runtime offers".into()
    } else {
        format!(
            "{package} here has {}; `plinth plugin interfaces` lists them",
            siblings.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_module_is_not_a_component() {
        // `(module)`: magic, version 1.
        let module = b"\0asm\x01\0\0\0";
        match component_imports(module) {
            Err(err) => assert!(err.contains("core WebAssembly module"), "{err}"),
            Ok(imports) => panic!("read as a component: {imports:?}"),
        }
    }

    #[test]
    fn bytes_that_are_not_wasm_are_refused() {
        assert!(component_imports(b"PK\x03\x04 a zip file").is_err());
        assert!(component_imports(b"").is_err());
    }
}
