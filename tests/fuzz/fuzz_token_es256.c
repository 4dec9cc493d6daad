/* fuzz_token_es256: fuzz_token.c with an ES256 key (see its head). */
#define FUZZ_TOKEN_ES256 1
#include "fuzz_token.c"
