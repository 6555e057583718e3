; Python: classes, functions (methods are recognised from their enclosing class)
; and imported modules.
(class_definition
  name: (identifier) @name) @definition.class

(function_definition
  name: (identifier) @name) @definition.function

(import_statement
  name: [(dotted_name) @import
         (aliased_import name: (dotted_name) @import)])

(import_from_statement
  module_name: [(dotted_name) (relative_import)] @import)

