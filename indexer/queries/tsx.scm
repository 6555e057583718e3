; TSX: same as typescript.scm (the tsx grammar shares the TypeScript node types).
; namespaces/modules, arrow-function constants and imports.
(class_declaration
  name: (type_identifier) @name) @definition.class

(abstract_class_declaration
  name: (type_identifier) @name) @definition.class

(interface_declaration
  name: (type_identifier) @name) @definition.interface

(type_alias_declaration
  name: (type_identifier) @name) @definition.type

(enum_declaration
  name: (identifier) @name) @definition.enum

(function_declaration
  name: (identifier) @name) @definition.function

(function_signature
  name: (identifier) @name) @definition.function

(generator_function_declaration
  name: (identifier) @name) @definition.function

(method_definition
  name: [(property_identifier) (private_property_identifier)] @name) @definition.method

(abstract_method_signature
  name: (property_identifier) @name) @definition.method

(internal_module
  name: [(identifier) (nested_identifier)] @name) @definition.namespace

(variable_declarator
  name: (identifier) @name
  value: [(arrow_function) (function_expression)]) @definition.function

(import_statement
  source: (string (string_fragment) @import))

(export_statement
  source: (string (string_fragment) @import))

(call_expression
  function: (identifier) @_req
  arguments: (arguments . (string (string_fragment) @import))
  (#eq? @_req "require"))
