; Elixir: modules (defmodule), protocols (defprotocol), functions and macros (def, defp, defmacro, defmacrop,
; defguard, defguardp, defdelegate; a guard's `when` and a one-line `, do:` form included), and the modules a
; file aliases, imports, requires or uses.
(call
  target: (identifier) @_kw
  (arguments . (alias) @name)
  (#eq? @_kw "defmodule")) @definition.module

(call
  target: (identifier) @_kw
  (arguments . (alias) @name)
  (#eq? @_kw "defprotocol")) @definition.interface

(call
  target: (identifier) @_kw
  (arguments . [(call target: (identifier) @name)
                (identifier) @name
                (binary_operator left: [(call target: (identifier) @name) (identifier) @name] "when")])
  (#match? @_kw "^(def|defp|defmacro|defmacrop|defguard|defguardp|defdelegate)$")) @definition.function

(call
  target: (identifier) @_kw
  (arguments . [(alias) @import
                (dot left: (alias) right: (tuple)) @import])
  (#match? @_kw "^(alias|import|require|use)$"))
