; OCaml implementations (.ml): values and functions bound by a top-level or module-level `let`, types, exceptions,
; modules, module types, classes and externals, and the modules a file opens or includes (`open Stdune`: OCaml has
; no imports, and a module is named by its file).
(value_definition
  (let_binding pattern: (value_name) @name)) @definition.function

; include: ocaml_shared.scm

(open_module
  (module_path) @import)

(include_module
  (module_path) @import)
