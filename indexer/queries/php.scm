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

; require / include / require_once / include_once of a literal path, or of __DIR__ . '/x.php'
((_
   [(string (string_content) @import) (encapsed_string (string_content) @import)
    (binary_expression right: [(string (string_content) @import) (encapsed_string (string_content) @import)])]) @_include
 (#match? @_include "^(require|include)(_once)?[ (]"))
