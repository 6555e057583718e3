; Objective-C: @interface/@implementation/@protocol, methods, C functions and
; types, #import / #include / @import.
(class_interface
  . (identifier) @name) @definition.class

(class_implementation
  . (identifier) @name) @definition.class

(protocol_declaration
  . (identifier) @name) @definition.interface

; No @name: parse.py names a method after its first selector part.
(method_declaration) @definition.method

(method_definition) @definition.method

(function_declarator
  declarator: (identifier) @name) @definition.function

(struct_specifier
  name: (type_identifier) @name
  body: (field_declaration_list)) @definition.struct

(enum_specifier
  name: (type_identifier) @name
  body: (enumerator_list)) @definition.enum

(type_definition
  declarator: (type_identifier) @name) @definition.type

(preproc_include
  path: (_) @import)

(module_import
  path: (_) @import)
