# Runs a program and checks its exit code exactly, and optionally its output (cmake -P, for command-line ctests).
#   -Dprogram=PATH -Darguments="a b c" -Dexpected_exit=N          required
#   -Dinput=FILE                  feed FILE to the program's stdin
#   -Djson_true=FIELD             the last line of stdout is a JSON object whose FIELD is true
#   -Dexpected_output=TEXT        stdout contains TEXT (plain text, not a regular expression)
#   -Dexpected_error=TEXT         stderr contains TEXT
separate_arguments(argument_list UNIX_COMMAND "${arguments}")
set(input_option)
if(DEFINED input)
  set(input_option INPUT_FILE ${input})
endif()
execute_process(COMMAND ${program} ${argument_list} ${input_option}
  RESULT_VARIABLE exit_code OUTPUT_VARIABLE output ERROR_VARIABLE error_output)

if(NOT exit_code STREQUAL expected_exit)
  message(FATAL_ERROR
    "expected exit code ${expected_exit}, got ${exit_code}\nstdout:\n${output}\nstderr:\n${error_output}")
endif()
if(DEFINED json_true)
  string(STRIP "${output}" stripped)
  string(FIND "${stripped}" "\n" last_break REVERSE)
  math(EXPR last_start "${last_break} + 1")
  string(SUBSTRING "${stripped}" ${last_start} -1 last_line)
  string(JSON value ERROR_VARIABLE json_error GET "${last_line}" ${json_true})
  if(json_error)
    message(FATAL_ERROR "the last line is not a JSON object with \"${json_true}\": ${json_error}\n${last_line}")
  endif()
  if(NOT value STREQUAL "ON")
    message(FATAL_ERROR "\"${json_true}\" is ${value}, expected true\nstdout:\n${output}")
  endif()
endif()
if(DEFINED expected_output)
  string(FIND "${output}" "${expected_output}" found)
  if(found EQUAL -1)
    message(FATAL_ERROR "stdout lacks: ${expected_output}\nstdout:\n${output}\nstderr:\n${error_output}")
  endif()
endif()
if(DEFINED expected_error)
  string(FIND "${error_output}" "${expected_error}" found)
  if(found EQUAL -1)
    message(FATAL_ERROR "stderr lacks: ${expected_error}\nstderr:\n${error_output}")
  endif()
endif()
message(STATUS "exit code ${exit_code} as expected")
