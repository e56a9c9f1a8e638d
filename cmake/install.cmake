# Installation (`cmake --install BUILD [--prefix DIR]`): the shared library
# libkvpool.so.<major> (C API and C++ API), the public headers
# include/kvpool/*.h, a CMake package (find_package(kvpool) gives the
# imported target kvpool::kvpool) and kvpool.pc for pkg-config. Templates
# live in packaging/. Included from the top-level CMakeLists.txt after src/.
#
# kvpool_shared (OUTPUT_NAME kvpool) is the static `kvpool` library linked
# whole into a shared object, so both are built from the same objects; the
# in-tree targets keep linking the static `kvpool`. kvpool's private
# dependencies (xxhash, toml++, hiredis, liburing, libnuma, SPDK) are linked into the
# shared library and are not part of its interface.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KVPOOL_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kvpool)

set_target_properties(kvpool PROPERTIES POSITION_INDEPENDENT_CODE ON)

# A shared library needs a source of its own; every symbol comes from kvpool.
set(KVPOOL_SHARED_SOURCE ${PROJECT_BINARY_DIR}/packaging/kvpool_shared.cc)
file(CONFIGURE OUTPUT ${KVPOOL_SHARED_SOURCE}
     CONTENT "// libkvpool.so: the objects of the static kvpool library, linked whole.\n")
add_library(kvpool_shared SHARED ${KVPOOL_SHARED_SOURCE})
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.24)
  target_link_libraries(kvpool_shared PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,kvpool>")
else()
  target_link_libraries(kvpool_shared PRIVATE -Wl,--whole-archive kvpool -Wl,--no-whole-archive)
endif()
target_include_directories(kvpool_shared INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
# The C++ headers use C++20 (std::span, defaulted comparisons); c.h is C99.
target_compile_features(kvpool_shared INTERFACE cxx_std_20)
set_target_properties(kvpool_shared PROPERTIES
  OUTPUT_NAME kvpool
  EXPORT_NAME kvpool
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}
  LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/lib
  # Dependencies outside the system directories (an SPDK prefix) stay found.
  INSTALL_RPATH_USE_LINK_PATH ON)
# No unresolved symbol may wait for the program that loads the library
# (sanitizer builds leave their runtime's symbols to the program).
if(KVPOOL_SANITIZE STREQUAL "")
  target_link_options(kvpool_shared PRIVATE -Wl,--no-undefined)
endif()
kvpool_warnings(kvpool_shared)

install(TARGETS kvpool_shared EXPORT kvpoolTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/kvpool
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(EXPORT kvpoolTargets NAMESPACE kvpool:: DESTINATION ${KVPOOL_CMAKE_INSTALL_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/packaging/kvpoolConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/packaging/kvpoolConfig.cmake
                              INSTALL_DESTINATION ${KVPOOL_CMAKE_INSTALL_DIR})
# 0.x: the SONAME and the package both change with the major version.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/packaging/kvpoolConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/packaging/kvpoolConfig.cmake
              ${PROJECT_BINARY_DIR}/packaging/kvpoolConfigVersion.cmake
        DESTINATION ${KVPOOL_CMAKE_INSTALL_DIR})

# kvpool.pc locates its prefix from its own directory (${pcfiledir}), so it
# stays right for `cmake --install --prefix` and relocated trees.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(KVPOOL_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH KVPOOL_PC_UP "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
  string(REGEX REPLACE "/$" "" KVPOOL_PC_UP "${KVPOOL_PC_UP}")
  set(KVPOOL_PC_PREFIX "\${pcfiledir}/${KVPOOL_PC_UP}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(KVPOOL_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(KVPOOL_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
configure_file(${PROJECT_SOURCE_DIR}/packaging/kvpool.pc.in
               ${PROJECT_BINARY_DIR}/packaging/kvpool.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/packaging/kvpool.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
