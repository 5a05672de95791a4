"""The names generated code must not give a variable: per target language, its keywords, what its
compilers predefine, and the library names the generated code includes or calls.

A `.expr` variable (or `--name`) that is one of these is renamed by codegen's namer. The rule, per
language:
- Python: the keywords and every builtin (`__debug__` cannot be assigned; a parameter named
  `ArithmeticError` or `float` would hide the one the generated code uses), and `math`.
- C: the keywords of C89 to C23 and GNU C (`asm`, `typeof`), the macros compilers predefine outside
  the reserved `_` namespace (`linux`, `unix`, ...), every name `<math.h>`, `<stddef.h>` and
  `<stdlib.h>` declare or define in glibc's default, strict (`-std=c99`) and `_GNU_SOURCE` modes, and
  the macros of `<stdio.h>`, `<string.h>` (included by large programs) and `<complex.h>`: a macro
  cannot be shadowed, and `malloc`/`free`/`snprintf`/`strlen` are called by large programs.
- JavaScript: the reserved words (strict mode and modules included), `arguments` and `eval`, and every
  global of ECMAScript (`Math`, `Number`, `Float64Array`, ...).
tests/test_codegen.py checks these lists against gcc's macros, node's globals and Python's builtins.
"""

from __future__ import annotations

import builtins
import keyword

PYTHON = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"math"}

_C_KEYWORDS = """
auto break case char const continue default do double else enum extern float for goto if inline int
long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while alignas alignof bool constexpr false nullptr static_assert thread_local true typeof
typeof_unqual asm main
"""
_C_PREDEFINED = "linux unix i386 i486 i586 i686 sun sparc mips vax m68k mc68000 hppa hp9000 ns32000 pyr sequent"
_C_MATH = """
acos acosh asin asinh atan atan2 atanh cbrt ceil copysign cos cosh erf erfc exp exp2 exp10 expm1 fabs
fdim floor fma fmax fmin fmod frexp hypot ilogb ldexp lgamma llogb llrint llround log log10 log1p log2
logb lrint lround modf nan nearbyint nextafter nextdown nexttoward nextup pow pow10 remainder remquo
rint round roundeven scalb scalbln scalbn sin sincos sinh sqrt tan tanh tgamma trunc j0 j1 jn y0 y1 yn
gamma signgam drem finite significand isinff isnanf fmaxmag fminmag fromfp fromfpx ufromfp ufromfpx
totalorder totalordermag canonicalize getpayload setpayload setpayloadsig fadd fsub fmul fdiv dadd
dsub dmul ddiv ffma dfma fsqrt dsqrt
isfinite isinf isnan isnormal signbit fpclassify isgreater isgreaterequal isless islessequal
islessgreater isunordered iscanonical iseqsig issignaling issubnormal iszero math_errhandling
INFINITY NAN MAXFLOAT MATH_ERRNO MATH_ERREXCEPT FP_NAN FP_INFINITE FP_ZERO FP_SUBNORMAL FP_NORMAL
FP_ILOGB0 FP_ILOGBNAN FP_LLOGB0 FP_LLOGBNAN FP_FAST_FMA FP_FAST_FMAF FP_FAST_FMAL FP_INT_UPWARD
FP_INT_DOWNWARD FP_INT_TOWARDZERO FP_INT_TONEARESTFROMZERO FP_INT_TONEAREST
DOMAIN SING OVERFLOW UNDERFLOW TLOSS PLOSS X_TLOSS float_t double_t
"""
# math.h's constants and HUGE_VAL/SNAN, with every suffix glibc gives their float types
_C_SUFFIXED = ("M_E M_LOG2E M_LOG10E M_LN2 M_LN10 M_PI M_PI_2 M_PI_4 M_1_PI M_2_PI M_2_SQRTPI M_SQRT2 "
               "M_SQRT1_2 HUGE_VAL SNAN")
_C_SUFFIXES = ("", "f", "l", "F", "L", "f16", "f32", "f64", "f128", "f32x", "f64x", "_F16", "_F32", "_F64",
               "_F128", "_F32X", "_F64X", "F16", "F32", "F64", "F128", "F32X", "F64X")
_C_STDDEF_STDLIB = """
NULL offsetof size_t ptrdiff_t wchar_t max_align_t nullptr_t unreachable
EXIT_FAILURE EXIT_SUCCESS RAND_MAX MB_CUR_MAX div_t ldiv_t lldiv_t
abort abs aligned_alloc at_quick_exit atexit atof atoi atol atoll bsearch calloc div exit free getenv
labs ldiv llabs lldiv malloc mblen mbstowcs mbtowc qsort quick_exit rand realloc srand strtod strtof
strtol strtold strtoll strtoul strtoull system wcstombs wctomb free_sized free_aligned_sized memalignment
alloca random srandom initstate setstate drand48 erand48 lrand48 nrand48 mrand48 jrand48 srand48 seed48
lcong48 rand_r posix_memalign valloc memalign mkstemp mkdtemp mktemp realpath setenv unsetenv putenv
clearenv getloadavg getsubopt reallocarray ecvt fcvt gcvt qecvt qfcvt qgcvt on_exit a64l l64a
BIG_ENDIAN LITTLE_ENDIAN PDP_ENDIAN BYTE_ORDER FD_SETSIZE NFDBITS FD_SET FD_CLR FD_ISSET FD_ZERO
WNOHANG WUNTRACED WSTOPPED WEXITED WCONTINUED WNOWAIT WEXITSTATUS WTERMSIG WSTOPSIG WIFEXITED
WIFSIGNALED WIFSTOPPED WIFCONTINUED WCOREDUMP WCOREFLAG
htobe16 htobe32 htobe64 htole16 htole32 htole64 be16toh be32toh be64toh le16toh le32toh le64toh
errno
"""
# <stdio.h>'s and <string.h>'s macros and the functions called from them (a large program's file
# includes both), and <complex.h>'s macros (a caller's file that includes it before the header would
# read a parameter `I` or `complex` as the imaginary unit, or a type)
_C_STDIO_STRING_COMPLEX = """
BUFSIZ EOF FILENAME_MAX FOPEN_MAX L_ctermid L_cuserid L_tmpnam P_tmpdir RENAME_EXCHANGE RENAME_NOREPLACE
RENAME_WHITEOUT SEEK_CUR SEEK_DATA SEEK_END SEEK_HOLE SEEK_SET TMP_MAX stderr stdin stdout strdupa strndupa
snprintf strlen I complex imaginary CMPLX CMPLXF CMPLXL CMPLXF32 CMPLXF64 CMPLXF128 CMPLXF32X CMPLXF64X
"""
C = (frozenset((_C_KEYWORDS + _C_PREDEFINED + _C_MATH + _C_STDDEF_STDLIB + _C_STDIO_STRING_COMPLEX).split())
     | {name + suffix for name in _C_SUFFIXED.split() for suffix in _C_SUFFIXES})

_JS_RESERVED_WORDS = """
break case catch class const continue debugger default delete do else export extends finally for
function if import in instanceof new return super switch this throw try typeof var void while with
yield let static enum await implements package protected interface private public null true false
arguments eval
"""
_JS_GLOBALS = """
globalThis Infinity NaN undefined eval isFinite isNaN parseFloat parseInt decodeURI decodeURIComponent
encodeURI encodeURIComponent escape unescape AggregateError Array ArrayBuffer Atomics BigInt
BigInt64Array BigUint64Array Boolean DataView Date Error EvalError FinalizationRegistry Float16Array
Float32Array Float64Array Function Int8Array Int16Array Int32Array Iterator JSON Map Math Number Object
Promise Proxy RangeError ReferenceError Reflect RegExp Set SharedArrayBuffer String Symbol SyntaxError
TypeError Uint8Array Uint8ClampedArray Uint16Array Uint32Array URIError WeakMap WeakRef WeakSet Intl
WebAssembly console
"""
JAVASCRIPT = frozenset((_JS_RESERVED_WORDS + _JS_GLOBALS).split())

RESERVED = {"python": PYTHON, "c": C, "javascript": JAVASCRIPT}
