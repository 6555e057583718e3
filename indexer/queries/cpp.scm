; C++ (also used for .h): functions, methods, classes, structs, enums, typedefs,
; aliases, namespaces and #include lines.
(function_declarator
  declarator: [(identifier) (field_identifier) (qualified_identifier)
               (destructor_name) (operator_name)] @name) @definition.function

(class_specifier
  name: [(type_identifier) (qualified_identifier) (template_type)] @name
  body: (field_declaration_list)) @definition.class

(struct_specifier
  name: [(type_identifier) (qualified_identifier) (template_type)] @name
  body: (field_declaration_list)) @definition.struct

(union_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @definition.struct

(enum_specifier
  name: (type_identifier) @name
  body: (enumerator_list)) @definition.enum

(type_definition
  declarator: (type_identifier) @name) @definition.type

(alias_declaration
  name: (type_identifier) @name) @definition.type

(concept_definition
  name: (identifier) @name) @definition.type

(namespace_definition
  name: [(namespace_identifier) (nested_namespace_specifier)] @name) @definition.namespace

(preproc_function_def
  name: (identifier) @name) @definition.macro

(preproc_include
  path: (_) @import)
