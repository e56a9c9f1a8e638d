# Locates the Debian packages kvpool builds against (scripts/setup.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(CLI11 REQUIRED)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
pkg_check_modules(TOMLPP REQUIRED IMPORTED_TARGET tomlplusplus)
# hiredis (Debian libhiredis-dev 0.14, no cluster support): the protocol
# reader/writer of the Redis Cluster client (src/tier/redis/).
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
# cpp-httplib (Debian libcpp-httplib-dev 0.11, built as a shared library
# there): kvpool serve and the serve bench's client. Link PkgConfig::HTTPLIB.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
set(HTTPLIB_INCLUDE_DIR ${HTTPLIB_INCLUDE_DIRS})

set(KVPOOL_HAVE_URING OFF)
if(KVPOOL_WITH_URING)
  pkg_check_modules(URING IMPORTED_TARGET liburing)
  if(URING_FOUND)
    set(KVPOOL_HAVE_URING ON)
  else()
    message(WARNING "liburing not found: the io_uring engine is disabled (psync only)")
  endif()
endif()

set(KVPOOL_HAVE_NUMA OFF)
if(KVPOOL_WITH_NUMA)
  find_library(NUMA_LIBRARY numa)
  find_path(NUMA_INCLUDE_DIR numa.h)
  if(NUMA_LIBRARY AND NUMA_INCLUDE_DIR)
    set(KVPOOL_HAVE_NUMA ON)
  endif()
endif()

# SPDK (optional, docs/spdk.md): its pkg-config files (spdk_nvme,
# spdk_env_dpdk, spdk_sock_modules) must be on PKG_CONFIG_PATH, e.g.
# PKG_CONFIG_PATH=/opt/spdk/lib/pkgconfig, or under KVPOOL_SPDK_DIR. SPDK must
# be built --with-shared: its transports and socket modules register
# themselves from library constructors, which static archives would drop.
set(KVPOOL_HAVE_SPDK OFF)
set(KVPOOL_SPDK_DIR "$ENV{KVPOOL_SPDK_DIR}" CACHE PATH "SPDK install prefix (holds lib/pkgconfig)")
if(KVPOOL_WITH_SPDK)
  if(KVPOOL_SPDK_DIR)
    set(ENV{PKG_CONFIG_PATH} "${KVPOOL_SPDK_DIR}/lib/pkgconfig:$ENV{PKG_CONFIG_PATH}")
  endif()
  pkg_check_modules(SPDK IMPORTED_TARGET spdk_nvme spdk_env_dpdk spdk_sock_modules)
  if(SPDK_FOUND AND NOT SPDK_LINK_LIBRARIES MATCHES "libspdk_nvme\\.so")
    message(WARNING "SPDK found but not as shared libraries (rebuild SPDK --with-shared): "
                    "the SPDK device is disabled")
  elseif(SPDK_FOUND)
    set(KVPOOL_HAVE_SPDK ON)
    message(STATUS "SPDK found (${SPDK_INCLUDE_DIRS}): building the SPDK device")
  else()
    message(STATUS "SPDK not found: kind = \"spdk\" reports Unsupported (docs/spdk.md)")
  endif()
endif()
