; Kotlin: classes / interfaces / enum classes, objects, functions, type aliases,
; imports. (tree-sitter-kotlin 1.x: interfaces are class_declaration with an
; "interface" keyword; enum classes carry an "enum" class_modifier.)
(class_declaration
  "interface"
  name: (identifier) @name) @definition.interface

(class_declaration
  (modifiers (class_modifier "enum"))
  name: (identifier) @name) @definition.enum

(class_declaration
  "class"
  name: (identifier) @name) @definition.class

(object_declaration
  name: (identifier) @name) @definition.object

(function_declaration
  name: (identifier) @name) @definition.function

(type_alias
  type: (identifier) @name) @definition.type

(import
  (qualified_identifier) @import)
