; OCaml interfaces (.mli): what a module offers (`val`, types, exceptions, modules, module types, classes,
; externals), with the doc comments that are usually written here, and the modules it opens or includes.
(value_specification
  (value_name) @name) @definition.function

; include: ocaml_shared.scm

(open_module_signature
  (extended_module_path) @import)

(include_module_type
  (module_type_path) @import)
