; Dart: classes (abstract, sealed, base ...), mixins, extensions, enums, typedefs, functions and methods (a
; signature; its body is the next sibling), getters and setters, and the files a library imports, exports or
; holds as parts (`import 'package:flame/components.dart'`, `export 'src/x.dart'`, `part 'y.dart'`).
(class_definition
  name: (identifier) @name) @definition.class

(mixin_declaration
  (identifier) @name) @definition.class

(extension_declaration
  name: (identifier) @name) @definition.extension

(enum_declaration
  name: (identifier) @name) @definition.enum

(type_alias
  . (type_identifier) @name) @definition.type

(function_signature
  name: (identifier) @name) @definition.function

(getter_signature
  name: (identifier) @name) @definition.function

(setter_signature
  name: (identifier) @name) @definition.function

(library_import (import_specification (configurable_uri (uri) @import)))

(library_export (configurable_uri (uri) @import))

(part_directive (uri) @import)
