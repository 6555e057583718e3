; JavaScript: classes, functions, methods, `const f = () => ...` / function
; expressions, ES imports, re-exports and require("...") calls.
(class_declaration
  name: (identifier) @name) @definition.class

(function_declaration
  name: (identifier) @name) @definition.function

(generator_function_declaration
  name: (identifier) @name) @definition.function

(method_definition
  name: [(property_identifier) (private_property_identifier)] @name) @definition.method

(variable_declarator
  name: (identifier) @name
  value: [(arrow_function) (function_expression)]) @definition.function

(variable_declarator
  name: (identifier) @name
  value: (class)) @definition.class

(import_statement
  source: (string (string_fragment) @import))

(export_statement
  source: (string (string_fragment) @import))

(call_expression
  function: (identifier) @_req
  arguments: (arguments . (string (string_fragment) @import))
  (#eq? @_req "require"))
