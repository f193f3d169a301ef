# Install-time part of deploy/install.cmake: writes the configuration and
# the systemd unit for the prefix installed to (CMAKE_INSTALL_PREFIX here
# is the one of `cmake --install --prefix`, or /usr in the package).
#
# - extractd.cfg: deploy/extractd.cfg with schema.file naming the
#   installed schema (absolute: the config lives apart from the schemas);
# - extractd.service: deploy/extractd.service with ExecStart naming the
#   installed binary and the configuration and credential paths under
#   SYSCONFDIR/extractd.
# A line that is not there any more fails the install: the templates
# drifted from this script.

function(dir_of var rel default_abs)
  if(IS_ABSOLUTE "${rel}")
    set(${var} "${rel}" PARENT_SCOPE)
  elseif(default_abs)
    set(${var} "${default_abs}" PARENT_SCOPE)
  else()
    set(${var} "${CMAKE_INSTALL_PREFIX}/${rel}" PARENT_SCOPE)
  endif()
endfunction()

function(replace_once text_var old new what)
  string(FIND "${${text_var}}" "${old}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${what}: '${old}' not found: "
            "deploy/install_config.cmake needs updating")
  endif()
  string(REPLACE "${old}" "${new}" out "${${text_var}}")
  set(${text_var} "${out}" PARENT_SCOPE)
endfunction()

set(prefix "${CMAKE_INSTALL_PREFIX}")
set(etc_default "")
if(prefix STREQUAL "/usr")
  set(etc_default "/etc")
endif()
dir_of(bindir "${EXTRACTD_BINDIR}" "")
dir_of(datadir "${EXTRACTD_DATADIR}" "")
dir_of(sysconfdir "${EXTRACTD_SYSCONFDIR}" "${etc_default}")
set(confdir "${sysconfdir}/extractd")

file(READ "${EXTRACTD_SOURCE_DIR}/deploy/extractd.cfg" cfg)
replace_once(cfg
  "file = \"schemas/person.schema.json\";"
  "file = \"${datadir}/extractd/schemas/person.schema.json\";"
  "deploy/extractd.cfg")
file(READ "${EXTRACTD_SOURCE_DIR}/deploy/extractd.service" unit)
replace_once(unit "ExecStart=/usr/local/bin/extractd "
             "ExecStart=${bindir}/extractd " "deploy/extractd.service")
replace_once(unit " -c /etc/extractd/extractd.cfg "
             " -c ${confdir}/extractd.cfg " "deploy/extractd.service")
replace_once(unit "LoadCredential=openai-api-key:/etc/extractd/"
             "LoadCredential=openai-api-key:${confdir}/"
             "deploy/extractd.service")

# A directory of its own: two installs from one build may run at once.
string(RANDOM LENGTH 12 run)
set(work "${EXTRACTD_WORK_DIR}/${run}")
file(MAKE_DIRECTORY "${work}")
file(WRITE "${work}/extractd.cfg" "${cfg}")
file(WRITE "${work}/extractd.service" "${unit}")
file(INSTALL DESTINATION "${confdir}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${work}/extractd.cfg")
file(INSTALL DESTINATION "${prefix}/lib/systemd/system" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${work}/extractd.service")
file(REMOVE_RECURSE "${work}")
