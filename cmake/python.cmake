# Finds what the Python binding (python/) needs: python3 with its development
# files and pybind11, both from Debian (scripts/setup.sh installs
# python3-dev, pybind11-dev and python3-numpy for the test). Sets
# KVPOOL_HAVE_PYTHON, or KVPOOL_PYTHON_SKIP_REASON saying why the binding is
# not built (tests/CMakeLists.txt then registers python_test as skipped).
#
# The interpreter defaults to Debian's /usr/bin/python3, whose numpy is
# python3-numpy, even when another python3 comes first on PATH; pass
# -DPython3_EXECUTABLE=... to choose another.
option(KVPOOL_WITH_PYTHON "Build the Python binding (python/) when pybind11 is found" ON)

set(KVPOOL_HAVE_PYTHON OFF)
set(KVPOOL_PYTHON_SKIP_REASON "")
if(NOT KVPOOL_WITH_PYTHON)
  set(KVPOOL_PYTHON_SKIP_REASON "the binding is disabled (KVPOOL_WITH_PYTHON=OFF)")
elseif(NOT KVPOOL_SANITIZE STREQUAL "")
  # python3 is not instrumented: it cannot load a sanitized module.
  set(KVPOOL_PYTHON_SKIP_REASON
      "not built in a sanitizer build (KVPOOL_SANITIZE=${KVPOOL_SANITIZE})")
else()
  if(NOT Python3_EXECUTABLE AND EXISTS /usr/bin/python3)
    set(Python3_EXECUTABLE /usr/bin/python3 CACHE FILEPATH "python3 of the binding and its test")
  endif()
  find_package(Python3 COMPONENTS Interpreter Development.Module)
  if(Python3_FOUND)
    find_package(pybind11 CONFIG QUIET)
  endif()
  if(NOT Python3_FOUND)
    set(KVPOOL_PYTHON_SKIP_REASON "python3 with its development files not found (python3-dev)")
  elseif(NOT pybind11_FOUND)
    set(KVPOOL_PYTHON_SKIP_REASON "pybind11 not found (pybind11-dev; run scripts/setup.sh)")
  else()
    set(KVPOOL_HAVE_PYTHON ON)
    message(STATUS "Python binding: pybind11 ${pybind11_VERSION}, ${Python3_EXECUTABLE}")
  endif()
endif()
if(NOT KVPOOL_HAVE_PYTHON)
  message(STATUS "Python binding skipped: ${KVPOOL_PYTHON_SKIP_REASON}")
endif()
