; OCaml interfaces (.mli): what a module offers (`val`, types, exceptions, modules, module types, classes,
; externals), with the doc comments that are usually written here, and the modules it opens or includes.
(value_specification
  (value_name) @name) @definition.function

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

(open_module_signature
  (extended_module_path) @import)

(include_module_type
  (module_type_path) @import)
