; Haskell: functions (a type signature, else the equations; `where` and `let` bindings are local), data types,
; newtypes, type synonyms, type classes (their method signatures are methods), and the modules a module imports
; (`import qualified Data.Map as M`: Data.Map, not its alias).
(signature
  name: (variable) @name) @definition.function

(function
  name: (variable) @name) @definition.function

(bind
  name: (variable) @name) @definition.function

(data_type
  name: (name) @name) @definition.type

(newtype
  name: (name) @name) @definition.type

(type_synonym
  name: (name) @name) @definition.type

(class
  name: (name) @name) @definition.interface

(import
  module: (module) @import)
