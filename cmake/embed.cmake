# Turns the file IN into a C source OUT defining
#   const char NAME[]; const unsigned long NAME_len;
# (NUL-terminated; NAME_len leaves the NUL out). CMakeLists.txt's
# bistore_embed() calls it for each file compiled into the binary.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(RELATIVE_PATH rel ${SRC} ${IN})
file(WRITE ${OUT} "/* generated from ${rel} by cmake/embed.cmake */\n"
  "const char ${NAME}[] = {${bytes} 0};\n"
  "const unsigned long ${NAME}_len = ${len};\n")
