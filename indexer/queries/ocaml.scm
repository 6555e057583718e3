; OCaml implementations (.ml): values and functions bound by a top-level or module-level `let`, types, exceptions,
; modules, module types, classes and externals, and the modules a file opens or includes (`open Stdune`: OCaml has
; no imports, and a module is named by its file).
(value_definition
  (let_binding pattern: (value_name) @name)) @definition.function

(type_definition
  (type_binding name: (type_constructor) @name)) @definition.type

(exception_definition
  (constructor_declaration (constructor_name) @name)) @definition.type

(module_definition
  (module_binding (module_name) @name)) @definition.module

(module_type_definition
  (module_type_name) @name) @definition.interface

(class_definition
  (class_binding (class_name) @name)) @definition.class

(external
  (value_name) @name) @definition.function

(open_module
  (module_path) @import)

(include_module
  (module_path) @import)
