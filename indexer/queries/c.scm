; C: definitions, prototypes, types and #include lines.
; Function names are captured on the function_declarator; parse.py climbs to the
; enclosing function_definition / declaration and drops declarators in parameters.
(function_declarator
  declarator: (identifier) @name) @definition.function

(struct_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @definition.struct

(union_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @definition.struct

(enum_specifier
  name: (type_identifier) @name
  body: (enumerator_list)) @definition.enum

(type_definition
  declarator: (type_identifier) @name) @definition.type

(preproc_function_def
  name: (identifier) @name) @definition.macro

(preproc_include
  path: (_) @import)
