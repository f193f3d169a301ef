# Installing extractd as a daemon, and its Debian package (CPack).
#
#   cmake --install build [--prefix /usr/local]
#   cpack --config build/CPackConfig.cmake -B OUTDIR   # OUTDIR/extractd_*.deb
#
# Layout, under the prefix (/usr in the package):
#   bin/extractd, bin/llmsim                   the programs
#   share/man/man8/extractd.8, man1/llmsim.1   their man pages
#   share/extractd/schemas/*.schema.json       the JSON Schemas
#   share/doc/extractd/                        README.md and docs/
#   lib/systemd/system/extractd.service        the unit
#   SYSCONFDIR/extractd/extractd.cfg           the example configuration
# where SYSCONFDIR is /etc for the prefix /usr, PREFIX/etc otherwise.
#
# The configuration and the unit name paths of the layout (the schema,
# the binary, the configuration and the API key credential), so they are
# written at install time for the prefix installed to (install_config.cmake),
# not copied. tests/ops/test_package.py builds, installs, checks and
# removes the package.
include(GNUInstallDirs)

install(TARGETS extractd llmsim RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_SOURCE_DIR}/man/extractd.8
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CMAKE_SOURCE_DIR}/man/llmsim.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/schemas/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/extractd/schemas
        FILES_MATCHING PATTERN "*.json")
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
        FILES_MATCHING PATTERN "*.md" PATTERN "*.png" PATTERN "*.svg")
install(CODE "
  set(EXTRACTD_SOURCE_DIR \"${CMAKE_SOURCE_DIR}\")
  set(EXTRACTD_WORK_DIR \"${CMAKE_BINARY_DIR}/install-config\")
  set(EXTRACTD_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(EXTRACTD_DATADIR \"${CMAKE_INSTALL_DATADIR}\")
  set(EXTRACTD_SYSCONFDIR \"${CMAKE_INSTALL_SYSCONFDIR}\")")
install(SCRIPT ${CMAKE_SOURCE_DIR}/deploy/install_config.cmake)

# The Debian package: prefix /usr, configuration in /etc (a conffile:
# dpkg keeps local edits, and removes it on purge only). Its dependencies
# are what dpkg-shlibdeps finds the programs link, with the versions the
# build machine's libraries declare.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME extractd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "extractd maintainers <maintainers@users.noreply.r-seed-cc79ab91.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "free text from Kafka to schema-valid JSON records via an LLM API")
set(CPACK_PACKAGE_DESCRIPTION "\
extractd consumes texts from a Kafka topic, asks an OpenAI-compatible
chat-completions API to extract a JSON object from each, validates it
against a JSON Schema and produces it to another topic. Includes
llmsim, an OpenAI-compatible simulator for testing.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "ca-certificates")
# install_config.cmake writes to absolute paths (/etc): with DESTDIR
# they land in the package's tree, and it sees the prefix /usr.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(EXTRACTD_CONFFILES ${CMAKE_BINARY_DIR}/cpack/conffiles)
file(WRITE ${EXTRACTD_CONFFILES} "/etc/extractd/extractd.cfg\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${EXTRACTD_CONFFILES})
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
