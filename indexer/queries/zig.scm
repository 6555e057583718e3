; Zig: a container bound to a name (`pub const IO = struct { ... }`, enums, unions, opaque types, error sets), functions
; (a function that returns a type, `fn TreeType(comptime T: type) type`, is the generic type itself) and the files a
; file imports (`@import("vsr.zig")`; `@import("std")` names a package, no file).
(variable_declaration
  (identifier) @name
  (struct_declaration)) @definition.struct

(variable_declaration
  (identifier) @name
  (union_declaration)) @definition.struct

(variable_declaration
  (identifier) @name
  (opaque_declaration)) @definition.struct

(variable_declaration
  (identifier) @name
  (enum_declaration)) @definition.enum

(variable_declaration
  (identifier) @name
  (error_set_declaration)) @definition.type

(function_declaration
  name: (identifier) @name) @definition.function

(builtin_function
  (builtin_identifier) @_import
  (arguments . (string (string_content) @import))
  (#eq? @_import "@import"))
