; Ruby: modules, classes, methods (instance and singleton) and `require` /
; `require_relative` of a literal path.
(module
  name: [(constant) @name
         (scope_resolution name: (_) @name)]) @definition.module

(class
  name: [(constant) @name
         (scope_resolution name: (_) @name)]) @definition.class

(method
  name: (_) @name) @definition.function

(singleton_method
  name: (_) @name) @definition.method

(call
  method: (identifier) @_req
  arguments: (argument_list . (string (string_content) @import))
  (#match? @_req "^require(_relative)?$"))
