; PHP: classes, interfaces, traits, enums, functions, methods, `use` of
; namespaced names, and require / include of a literal path.
(class_declaration
  name: (name) @name) @definition.class

(interface_declaration
  name: (name) @name) @definition.interface

(trait_declaration
  name: (name) @name) @definition.interface

(enum_declaration
  name: (name) @name) @definition.enum

(function_definition
  name: (name) @name) @definition.function

(method_declaration
  name: (name) @name) @definition.method

(namespace_use_clause
  . [(qualified_name) (name)] @import)

(require_expression
  [(string (string_content) @import) (encapsed_string (string_content) @import)
   (binary_expression right: [(string (string_content) @import) (encapsed_string (string_content) @import)])])

(require_once_expression
  [(string (string_content) @import) (encapsed_string (string_content) @import)
   (binary_expression right: [(string (string_content) @import) (encapsed_string (string_content) @import)])])

(include_expression
  [(string (string_content) @import) (encapsed_string (string_content) @import)
   (binary_expression right: [(string (string_content) @import) (encapsed_string (string_content) @import)])])

(include_once_expression
  [(string (string_content) @import) (encapsed_string (string_content) @import)
   (binary_expression right: [(string (string_content) @import) (encapsed_string (string_content) @import)])])
