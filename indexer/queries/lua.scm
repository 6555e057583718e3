; Lua: functions (`function f()`, `local function f()`), functions of a table (`function M.f()`, `M.f = function()`)
; and methods (`function Widget:init()`), classes made by `local Button = Widget:extend{...}` (the classic / koreader
; idiom), and the modules a file requires (`require("ui/widget")`, `require "a.b"`).
(function_declaration
  name: (identifier) @name) @definition.function

(function_declaration
  name: (dot_index_expression field: (identifier) @name)) @definition.function

(function_declaration
  name: (method_index_expression method: (identifier) @name)) @definition.method

(assignment_statement
  (variable_list . name: (dot_index_expression field: (identifier) @name))
  (expression_list . value: (function_definition))) @definition.function

(variable_declaration
  (assignment_statement
    (variable_list . name: (identifier) @name)
    (expression_list . value: (function_call
      name: (method_index_expression method: (identifier) @_ext)
      (#eq? @_ext "extend"))))) @definition.class

(function_call
  name: (identifier) @_req
  arguments: (arguments . (string content: (string_content) @import))
  (#eq? @_req "require"))
