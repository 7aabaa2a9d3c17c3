# Turns the file IN into a C source OUT defining
#   const char bistore_openapi_yaml[]; const unsigned long bistore_openapi_yaml_len;
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from openapi/openapi.yaml */\n"
  "const char bistore_openapi_yaml[] = {${bytes} 0};\n"
  "const unsigned long bistore_openapi_yaml_len = ${len};\n")
