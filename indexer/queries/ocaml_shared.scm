; What OCaml implementations (.ml) and interfaces (.mli) both define: types, exceptions, modules, module types,
; classes and externals. Included by ocaml.scm and ocaml_interface.scm (`; include:` lines, `parse.query_source`).
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
