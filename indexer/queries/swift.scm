; Swift: class / struct / enum / actor / extension (all class_declaration; the
; @kind capture holds the keyword, which parse.py maps to the symbol kind),
; protocols, functions (methods inside types), typealiases, imports.
; Patterns are kept loose on purpose: tree-sitter-swift queries with field
; constraints on function_declaration compile very slowly (~0.5 s), so the
; function name is read in Python (first child in the "name" field).
(class_declaration
  declaration_kind: _ @kind
  name: _ @name) @definition.class

(protocol_declaration
  name: _ @name) @definition.interface

(function_declaration) @definition.function

(protocol_function_declaration) @definition.method

(typealias_declaration
  name: _ @name) @definition.type

(import_declaration
  (identifier) @import)
