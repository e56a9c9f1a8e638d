# Finds the llama.cpp static libraries that scripts/setup_llama.sh builds once
# (Release) into third_party/llama-install. Every kvpool build (RelWithDebInfo,
# ASan, TSan) links those same libraries. When they are absent the llama.cpp
# parts (integrations/llama_cpp, kvpool-mkmodel, `kvpool llama`, the llama
# tests' bodies) are skipped and everything else builds and passes.
option(KVPOOL_WITH_LLAMA "Build the llama.cpp connector when its libraries are installed" ON)
set(KVPOOL_LLAMA_PREFIX "${PROJECT_SOURCE_DIR}/third_party/llama-install" CACHE PATH
    "Install prefix of the llama.cpp static libraries (scripts/setup_llama.sh)")

set(KVPOOL_HAVE_LLAMA OFF)
if(KVPOOL_WITH_LLAMA)
  find_package(llama CONFIG QUIET PATHS ${KVPOOL_LLAMA_PREFIX} NO_DEFAULT_PATH)
  set(KVPOOL_LLAMA_VOCAB "${KVPOOL_LLAMA_PREFIX}/share/kvpool/ggml-vocab-llama-spm.gguf")
  if(llama_FOUND AND EXISTS ${KVPOOL_LLAMA_VOCAB})
    set(KVPOOL_HAVE_LLAMA ON)
    message(STATUS "llama.cpp ${LLAMA_VERSION} (${LLAMA_BUILD_COMMIT}) from ${KVPOOL_LLAMA_PREFIX}")
  else()
    message(STATUS "llama.cpp not found in ${KVPOOL_LLAMA_PREFIX}: skipping the llama.cpp "
                   "connector, kvpool-mkmodel and `kvpool llama` (run scripts/setup_llama.sh)")
  endif()
else()
  message(STATUS "llama.cpp parts disabled (KVPOOL_WITH_LLAMA=OFF)")
endif()
