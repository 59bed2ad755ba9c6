"""Vectorisable exp, sigmoid and tanh, the activations by code, and a finiteness check.

Numba's exp is a scalar libm call here (no SVML), about 0.3 G elements/s per thread; these reach
2-6 G/s because every step vectorises. All three are built on one exp of a non-positive argument:

    x = k ln2 + r, |r| <= ln2 / 2   k = round(x / ln2) by adding MAGIC = 1.5 * 2**52 + 1023, which also
                                    leaves k + 1023 in the low bits of the sum; ln2 split into a head
                                    with trailing zero bits and a tail, so that k * LN2_HI is exact
    exp(r) = P(r) / P(-r)           the diagonal Pade approximant, P = even + odd parts
    exp(x) = num / den,  num = 2**k P(r), den = P(-r)    (exp_parts: the division is left to the caller)
    exp(x) - 1 = ((2**k - 1) even + (2**k + 1) odd) / den   (expm1_nonpositive, for elu)

    sigmoid(z) = den / (den + num) for z >= 0, num / (den + num) for z < 0, with exp(-|z|) = num / den
    tanh(z) = sign(z) (den - num) / (den + num),                 with exp(-2|z|) = num / den

Pade [6/6] in float64 (truncation < 1e-18), [3/3] in float32 (< 1e-8). The measured error against the
reference's sigmoid is <= 3 ulp (tests/test_kernels.py). x is clamped at about -708 (float64) and -87
(float32), where exp(x) is still a normal number. These functions are compiled without reassociation
(the rounding by MAGIC would fold away) and are not inlined at Numba's IR level, which would give them
the caller's fast-math flags; LLVM inlines them with their own flags.
"""

import math

import numba as nb
import numpy as np
from numba import types
from numba.extending import intrinsic, overload

STRICT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
FAST = dict(STRICT, fastmath={"reassoc", "contract", "nsz"})

LOG2E = 1.4426950408889634
LN2_HI_64, LN2_LO_64 = 6.93147180369123816490e-01, 1.90821492927058770002e-10
LN2_HI_32, LN2_LO_32 = np.float32(0.693359375), np.float32(-2.12194440e-4)
LOG2E_32 = np.float32(LOG2E)
MAGIC_64, MAGIC_32 = 1.5 * 2.0**52 + 1023, np.float32(1.5 * 2.0**23 + 127)
X_MIN_64, X_MIN_32 = -708.0, np.float32(-87.0)     # exp(x) stays a normal number above these

# activation and output codes (the names of fastmlp.reference's tables)
IDENTITY, SIGMOID, TANH, RELU, SOFTMAX, LEAKY_RELU, ELU, SOFTPLUS, EXP, GELU, SILU = range(11)
FUNCTION_CODES = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "softmax": SOFTMAX,
                  "leaky_relu": LEAKY_RELU, "elu": ELU, "softplus": SOFTPLUS, "exp": EXP, "gelu": GELU,
                  "silu": SILU}
LEAKY_SLOPE = 0.01          # leaky_relu's slope below 0 (fastmlp.bricks.LEAKY_SLOPE)


def pade_exp_coefficients(n):
    """c_i of P(r) = sum c_i r**i, exp(r) ~ P(r) / P(-r): c_i = (2n - i)! n! / ((2n)! i! (n - i)!)."""
    f = math.factorial
    return tuple(f(2 * n - i) * f(n) / (f(2 * n) * f(i) * f(n - i)) for i in range(n + 1))


P64_0, P64_1, P64_2, P64_3, P64_4, P64_5, P64_6 = pade_exp_coefficients(6)
P32_0, P32_1, P32_2, P32_3 = (np.float32(c) for c in pade_exp_coefficients(3))
FLOAT_INT = {types.float64: types.int64, types.float32: types.int32}


@intrinsic
def float_bits(typingctx, x):
    """The IEEE-754 bit pattern of a float64 (as int64) or float32 (as int32)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))
    return FLOAT_INT[x](x), codegen


@intrinsic
def bits_float(typingctx, bits):
    """The float64 (from int64) or float32 (from int32) whose IEEE-754 bit pattern is `bits`."""
    float_type = {v: k for k, v in FLOAT_INT.items()}[bits]

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))
    return float_type(bits), codegen


@nb.njit(**STRICT)
def exp_pieces64(x):
    """(even, odd, 2**k) of the Pade form above for a float64 x <= 0 (clamped at X_MIN_64)."""
    x = X_MIN_64 if x < X_MIN_64 else x
    k_biased = x * LOG2E + MAGIC_64
    k = k_biased - MAGIC_64
    r = (x - k * LN2_HI_64) - k * LN2_LO_64
    r2 = r * r
    even = ((P64_6 * r2 + P64_4) * r2 + P64_2) * r2 + P64_0
    odd = ((P64_5 * r2 + P64_3) * r2 + P64_1) * r
    return even, odd, bits_float(float_bits(k_biased) << 52)


@nb.njit(**STRICT)
def exp_pieces32(x):
    """exp_pieces64 for a float32 x <= 0 (clamped at X_MIN_32), in float32."""
    x = X_MIN_32 if x < X_MIN_32 else x
    k_biased = x * LOG2E_32 + MAGIC_32
    k = k_biased - MAGIC_32
    r = (x - k * LN2_HI_32) - k * LN2_LO_32
    r2 = r * r
    even = P32_2 * r2 + P32_0
    odd = (P32_3 * r2 + P32_1) * r
    exponent = np.int32((float_bits(k_biased) << 23) & 0x7F800000)   # numba widens int32 shifts
    return even, odd, bits_float(exponent)


@nb.njit(**STRICT)
def exp_parts64(x):
    """(num, den) with exp(x) = num / den for a float64 x <= 0 (clamped at X_MIN_64)."""
    even, odd, scale = exp_pieces64(x)
    return (even + odd) * scale, even - odd


@nb.njit(**STRICT)
def exp_parts32(x):
    """(num, den) with exp(x) = num / den for a float32 x <= 0 (clamped at X_MIN_32), in float32."""
    even, odd, scale = exp_pieces32(x)
    return (even + odd) * scale, even - odd


# expm1(x) = exp(x) - 1 = (num - den) / den, with num - den = (2**k - 1) even + (2**k + 1) odd: for
# |x| <= ln2 / 2 (k = 0) that is 2 odd, which keeps the relative accuracy of a tiny x, where subtracting
# 1 from exp(x) would leave only its absolute accuracy (x = -1e-10: a relative error of 1e-7).

@nb.njit(**STRICT)
def expm1_nonpositive64(x):
    """exp(x) - 1 for a float64 x <= 0, to a few ulp relative (see above)."""
    even, odd, scale = exp_pieces64(x)
    return ((scale - 1.0) * even + (scale + 1.0) * odd) / (even - odd)


@nb.njit(**STRICT)
def expm1_nonpositive32(x):
    """expm1_nonpositive64 for a float32 x <= 0, in float32."""
    even, odd, scale = exp_pieces32(x)
    one = np.float32(1)
    return ((scale - one) * even + (scale + one) * odd) / (even - odd)


@nb.njit(**STRICT)
def sigmoid64(z):
    """sigmoid(z) for a float64 z (no overflow for any finite z)."""
    num, den = exp_parts64(-abs(z))
    return (den if z >= 0 else num) / (den + num)


@nb.njit(**STRICT)
def sigmoid32(z):
    """sigmoid(z) for a float32 z, in float32 (no overflow for any finite z)."""
    num, den = exp_parts32(-abs(z))
    return (den if z >= 0 else num) / (den + num)


@nb.njit(**STRICT)
def exp_nonpositive64(x):
    """exp(x) for a float64 x <= 0."""
    num, den = exp_parts64(x)
    return num / den


@nb.njit(**STRICT)
def exp_nonpositive32(x):
    """exp(x) for a float32 x <= 0, in float32."""
    num, den = exp_parts32(x)
    return num / den


@nb.njit(**STRICT)
def tanh64(z):
    """tanh(z) for a float64 z: (1 - e) / (1 + e) with e = exp(-2|z|), signed."""
    num, den = exp_parts64(-2.0 * abs(z))
    t = (den - num) / (den + num)
    return t if z >= 0 else -t


@nb.njit(**STRICT)
def tanh32(z):
    """tanh(z) for a float32 z, in float32."""
    num, den = exp_parts32(np.float32(-2.0) * abs(z))
    t = (den - num) / (den + num)
    return t if z >= 0 else -t


# Typing-time dispatch on the float type: sigmoid(z), exp_nonpositive(x), tanh(z) in z's own type.

def sigmoid(z):
    """sigmoid(z) in z's float type."""


def exp_nonpositive(x):
    """exp(x) for x <= 0 in x's float type."""


def expm1_nonpositive(x):
    """exp(x) - 1 for x <= 0 in x's float type."""


def tanh(z):
    """tanh(z) in z's float type."""


def _sigmoid32(z):
    return sigmoid32(z)


def _sigmoid64(z):
    return sigmoid64(z)


def _exp32(x):
    return exp_nonpositive32(x)


def _exp64(x):
    return exp_nonpositive64(x)


def _expm1_32(x):
    return expm1_nonpositive32(x)


def _expm1_64(x):
    return expm1_nonpositive64(x)


def _tanh32(z):
    return tanh32(z)


def _tanh64(z):
    return tanh64(z)


@overload(sigmoid)
def _sigmoid_for_dtype(z):
    return _sigmoid32 if z == types.float32 else _sigmoid64


@overload(exp_nonpositive)
def _exp_for_dtype(x):
    return _exp32 if x == types.float32 else _exp64


@overload(expm1_nonpositive)
def _expm1_for_dtype(x):
    return _expm1_32 if x == types.float32 else _expm1_64


@overload(tanh)
def _tanh_for_dtype(z):
    return _tanh32 if z == types.float32 else _tanh64


# softplus(z) = max(z, 0) + log(1 + e), e = exp(-|z|) = num / den in (0, 1], vectorisable (math.log1p is
# a scalar libm call here) and with one division: log(1 + e) = 2 atanh(s) = 2 s A(s^2), where
# s = e / (2 + e) = num / (2 den + num); above e = sqrt 2 - 1, log(1 + e) = ln 2 + 2 atanh(s) with
# s = (e - 1) / (e + 3) = (num - den) / (num + 3 den). Either way |s| <= 3 - 2 sqrt 2 = 0.172, and
# A(w) = atanh(sqrt w) / sqrt w = 1 + w / 3 + w^2 / 5 + ... on w = s^2 <= 0.0295 is the Chebyshev fit of
# A there of degree 7 in float64 and 3 in float32 (mpmath's chebyfit at 40 digits, errors 1.2e-18 and
# 7e-10; tests re-derive them), where A's series took degrees 11 and 5 for the same accuracy: float64's
# 16,384 units (value and derivative) in 24 us against 28 (2-core AMD EPYC, AVX-512). Measured on
# [-40, 40]: 6e-16 (float64) and 3e-7 (float32) relative to NumPy's logaddexp. (One division, not two,
# and a float32 series in float32 once took 16,384 of them from 41 and 35 us to 24 and 9.)
# The same e gives softplus' derivative, sigmoid(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) below, for
# one more division (the kernels keep it from the forward pass: 1 - exp(-h) from h = softplus(z) took
# a second exponential in the backward pass).
ATANH_FIT_64 = (1.0, 0.33333333333333826, 0.1999999999965117, 0.1428571438032084, 0.11111098528363024,
                0.09091815840114664, 0.07656264074182095, 0.07404855180327638)
ATANH_FIT_32 = tuple(np.float32(c) for c in (0.9999999993156591, 0.33333407669075593, 0.19987425258759525,
                                             0.14962195239572493))
SQRT2_MINUS_1 = math.sqrt(2.0) - 1.0
LN2 = math.log(2.0)
LN2_32, SQRT2_MINUS_1_32 = np.float32(LN2), np.float32(SQRT2_MINUS_1)


@nb.njit(inline="always", **STRICT)
def softplus_and_sigmoid64(z):
    """(softplus(z), sigmoid(z)) for a float64 z (see above)."""
    num, den = exp_parts64(-abs(z))
    big = num > SQRT2_MINUS_1 * den
    s = (num - den) / (num + 3.0 * den) if big else num / (2.0 * den + num)
    s2 = s * s
    a0, a1, a2, a3, a4, a5, a6, a7 = ATANH_FIT_64          # (a loop over the tuple ran 25% slower)
    t = ((((((a7 * s2 + a6) * s2 + a5) * s2 + a4) * s2 + a3) * s2 + a2) * s2 + a1) * s2 + a0
    return max(z, 0.0) + (2.0 * s * t + (LN2 if big else 0.0)), (den if z >= 0 else num) / (num + den)


@nb.njit(inline="always", **STRICT)
def softplus_and_sigmoid32(z):
    """softplus_and_sigmoid64 in float32 (see above)."""
    num, den = exp_parts32(-abs(z))
    big = num > SQRT2_MINUS_1_32 * den
    s = (num - den) / (num + np.float32(3) * den) if big else num / (np.float32(2) * den + num)
    s2 = s * s
    a0, a1, a2, a3 = ATANH_FIT_32
    t = ((a3 * s2 + a2) * s2 + a1) * s2 + a0
    return (max(z, np.float32(0)) + (np.float32(2) * s * t + (LN2_32 if big else np.float32(0))),
            (den if z >= 0 else num) / (num + den))


def softplus_and_sigmoid(z):
    """(softplus(z), sigmoid(z)) in z's float type."""


def _softplus_and_sigmoid32(z):
    return softplus_and_sigmoid32(z)


def _softplus_and_sigmoid64(z):
    return softplus_and_sigmoid64(z)


@overload(softplus_and_sigmoid)
def _softplus_and_sigmoid_for_dtype(z):
    return _softplus_and_sigmoid32 if z == types.float32 else _softplus_and_sigmoid64


# gelu's Phi and phi, vectorisable (math.erf is a scalar libm call), from one exponential: with a = |z|,
#     erfc(a / sqrt 2) = exp(-z**2 / 2) R(a),   R = N / D ~ erfcx(a / sqrt 2),
# N and D polynomials of degrees 8 and 9 (D one degree more, so that R keeps erfcx's 1 / x tail), all
# their coefficients positive (Horner's rule is stable on a >= 0): the relative fit on a <= 6 sqrt 2 by
# linearised least squares, N - erfcx D weighted by 1 / (erfcx D) of the previous round, at 40 digits
# (tests re-derive it), relative error 1e-17 exact and 4 ulp in float64; a clamped at 40, where the
# exponential is at its floor, so that a**9 stays finite. Phi(z) = exp(-z**2 / 2) R / 2 for z < 0 (so
# that Phi keeps its relative accuracy in the tail), else 1 - that. One exponential and one division a
# unit, 17 multiply-adds: the form erfc = t exp(-x**2) P(t), t = 2 / (2 + x), P of degree 19 in t (an
# interpolant, 11 ulp) had two divisions and 21; before it, erf's form and a second exponential for phi
# took three and two. 16,384 units (value and derivative): 28 us, was 36 us (2-core AMD EPYC, AVX-512);
# the float64 gelu step at (128, 64, 128, 10) went from 1.47x-1.78x ReLU's to 1.35x-1.50x with the t
# form (AMD EPYC without AVX-512, three runs).
ERFCX_NUM_64 = (1.0, 1.3236015447560465, 0.8737688534548692, 0.36219226923064446, 0.10173223912493566,
                0.019711190485534283, 0.002570930728863131, 0.00020710911360032495, 7.957925904083178e-06)
ERFCX_DEN_64 = (1.0, 2.121486105558914, 2.0664698630380554, 1.216215135802212, 0.47813025693177397,
                0.13070437989111397, 0.024963903172333726, 0.003232156964384895, 0.00025957279594798814,
                9.973780851806816e-06)
ERFCX_A_MAX = 40.0
INV_SQRT2, INV_SQRT_2PI = 1 / math.sqrt(2), 1 / math.sqrt(2 * math.pi)


@nb.njit(inline="always", **STRICT)
def gelu_parts64(z):
    """(Phi(z), phi(z)) in float64 for gelu (z Phi(z)) and its derivative (Phi(z) + z phi(z)): the
    standard normal CDF and density (see above)."""
    z = np.float64(z)
    gauss = exp_nonpositive64(-0.5 * z * z)                  # exp(-z**2 / 2)
    a = min(abs(z), ERFCX_A_MAX)
    num = ERFCX_NUM_64[-1]
    for k in range(len(ERFCX_NUM_64) - 2, -1, -1):         # Horner's rule, highest power first
        num = num * a + ERFCX_NUM_64[k]
    den = ERFCX_DEN_64[-1]
    for k in range(len(ERFCX_DEN_64) - 2, -1, -1):
        den = den * a + ERFCX_DEN_64[k]
    half_erfc = 0.5 * gauss * num / den
    return (half_erfc if z < 0 else 1.0 - half_erfc), gauss * INV_SQRT_2PI


# In float32 the t form: with x = |z| / sqrt 2 and t = 2 / (2 + x) in (0, 1], erfc(x) = t exp(-x**2) P(t),
# P a degree-10 polynomial in u = 2 t - 1 (x not clamped; the power form of its Chebyshev interpolant,
# relative error 1.4e-7; tests re-derive it), Phi from erfc as in float64. In the tail
# exp(-z**2 / 2) carries its rounded argument's error, z**2 float32 ulp (2e-5 at z = -13, where Phi is
# 6e-39; float32's 0.5 (1 + erf) is 0 from z = -6 on). float32's gelu step at (128, 64, 128, 10) took
# 1.79x ReLU's with an erf like float64's, 1.21x with Numerical Recipes' erfcc (two exponentials), 1.07x
# and 1.19x in two runs with this (2-core AMD EPYC, AVX2).
ERFCX_P_32 = tuple(np.float32(c) for c in (
    5.10791353e-01, 3.43580313e-01, 1.39735946e-01, 1.82217491e-02, -1.07533109e-02, -3.24373307e-03,
    1.53384704e-03, 4.31040022e-04, -3.04719086e-04, -3.67643617e-05, 4.42884145e-05))
INV_SQRT2_32, INV_SQRT_2PI_32 = np.float32(INV_SQRT2), np.float32(INV_SQRT_2PI)


@nb.njit(inline="always", **STRICT)
def gelu_parts32(z):
    """gelu_parts64 in float32 (see above)."""
    p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10 = ERFCX_P_32
    one, half = np.float32(1), np.float32(0.5)
    gauss = exp_nonpositive32(-half * z * z)                  # exp(-z**2 / 2), clamped below at X_MIN_32
    t = one / (one + half * INV_SQRT2_32 * abs(z))
    u = np.float32(2) * t - one
    p = p0 + u * (p1 + u * (p2 + u * (p3 + u * (p4 + u * (p5 + u * (p6 + u * (p7 + u * (p8 + u * (p9 + u * p10)))))))))
    half_erfc = half * t * gauss * p
    return (half_erfc if z < 0 else one - half_erfc), gauss * INV_SQRT_2PI_32


# gelu over rows, by dtype at compile time: a whole loop per overload, so that the call happens once a
# block of rows, not once a unit. (Dispatching gelu_parts itself left its float64 body out of line,
# called once a unit: the loop stopped vectorising and the float64 gelu step took 4x ReLU's.)

def gelu_rows(Z, b):
    """Z[i, j] = gelu(Z[i, j] + b[j]) in place for Z (n, width), in Z's float type."""


def gelu_rows_keeping_derivative(Z, b, dh_dz):
    """gelu_rows, and gelu'(z) = Phi(z) + z phi(z) into dh_dz (n, width)."""


def _parts_for(Z):
    return gelu_parts32 if Z.dtype == types.float32 else gelu_parts64


@overload(gelu_rows, jit_options=dict(error_model="numpy", fastmath=FAST["fastmath"]))
def _gelu_rows_for_dtype(Z, b):
    parts = _parts_for(Z)

    def gelu_rows_impl(Z, b):
        n, width = Z.shape
        for i in range(n):
            for j in range(width):
                z = Z[i, j] + b[j]
                Z[i, j] = z * parts(z)[0]
    return gelu_rows_impl


@overload(gelu_rows_keeping_derivative, jit_options=dict(error_model="numpy", fastmath=FAST["fastmath"]))
def _gelu_rows_keeping_derivative_for_dtype(Z, b, dh_dz):
    parts = _parts_for(Z)

    def gelu_rows_keeping_derivative_impl(Z, b, dh_dz):
        n, width = Z.shape
        for i in range(n):
            for j in range(width):
                z = Z[i, j] + b[j]
                cdf, density = parts(z)
                Z[i, j] = z * cdf
                dh_dz[i, j] = cdf + z * density
    return gelu_rows_keeping_derivative_impl


@nb.njit(inline="always", **STRICT)
def keeps_derivative(code):
    """Whether the kernels write activation `code`'s derivative beside h = f(z) in the forward pass
    (activate_rows_keeping_derivative): gelu's and silu's are not functions of h, and softplus's,
    sigmoid(z), comes from the exponential its forward pass takes (1 - exp(-h) would take another)."""
    return code == GELU or code == SILU or code == SOFTPLUS


# -- activations over rows: in place, one branch-free loop per code ---------------------------------------

@nb.njit(inline="always", **FAST)
def activate_rows(Z, b, code):
    """Z[i, j] = f(Z[i, j] + b[j]) in place for Z (n, width), f the activation or output `code`
    (softmax: each row's exp(z - max) / sum)."""
    n, width = Z.shape
    zero = Z.dtype.type(0)
    if code == IDENTITY:
        for i in range(n):
            for j in range(width):
                Z[i, j] += b[j]
    elif code == SIGMOID:
        for i in range(n):
            for j in range(width):
                Z[i, j] = sigmoid(Z[i, j] + b[j])
    elif code == TANH:
        for i in range(n):
            for j in range(width):
                Z[i, j] = tanh(Z[i, j] + b[j])
    elif code == RELU:
        for i in range(n):
            for j in range(width):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > zero else zero
    elif code == LEAKY_RELU:
        slope = Z.dtype.type(LEAKY_SLOPE)
        for i in range(n):
            for j in range(width):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > zero else slope * z
    elif code == ELU:
        for i in range(n):
            for j in range(width):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > zero else expm1_nonpositive(min(z, zero))
    elif code == SOFTPLUS:
        for i in range(n):
            for j in range(width):
                z = Z[i, j] + b[j]
                Z[i, j] = softplus_and_sigmoid(z)[0]
    elif code == GELU:
        gelu_rows(Z, b)
    elif code == SILU:
        for i in range(n):
            for j in range(width):
                z = Z[i, j] + b[j]
                Z[i, j] = z * sigmoid(z)
    else:
        for i in range(n):
            softmax_row(Z, i, b)


@nb.njit(inline="always", **FAST)
def activate_rows_keeping_derivative(Z, b, code, dh_dz):
    """activate_rows for a code whose derivative is kept (keeps_derivative), writing f'(z) into dh_dz
    (n, width) in the same pass: gelu Phi(z) + z phi(z), softplus sigmoid(z), silu s (1 + z (1 - s))
    with s = sigmoid(z)."""
    n, width = Z.shape
    one = Z.dtype.type(1)
    if code == GELU:
        gelu_rows_keeping_derivative(Z, b, dh_dz)
    elif code == SOFTPLUS:
        for i in range(n):
            for j in range(width):
                Z[i, j], dh_dz[i, j] = softplus_and_sigmoid(Z[i, j] + b[j])
    else:
        for i in range(n):
            for j in range(width):
                z = Z[i, j] + b[j]
                s = sigmoid(z)
                Z[i, j] = z * s
                dh_dz[i, j] = s * (one + z * (one - s))


@nb.njit(inline="always", **FAST)
def softmax_row(Z, i, b):
    """Z[i] = softmax(Z[i] + b), the row shifted by its maximum."""
    width = Z.shape[1]
    top = Z[i, 0] + b[0]
    for j in range(width):
        Z[i, j] += b[j]
        top = max(top, Z[i, j])
    total = Z.dtype.type(0)
    for j in range(width):
        Z[i, j] = exp_nonpositive(Z[i, j] - top)
        total += Z[i, j]
    inv = Z.dtype.type(1) / total
    for j in range(width):
        Z[i, j] *= inv


@nb.njit(inline="always", **FAST)
def scale_by_derivative(D, H, dH, code):
    """D *= f'(z), in place, written through H = f(z) (sigmoid h (1 - h), tanh 1 - h**2, relu h > 0,
    leaky_relu 1 or its slope, elu 1 or h + 1), or the kept f'(z) dH where keeps_derivative (gelu,
    softplus, silu; dH is not read for the others)."""
    n, width = D.shape
    one = D.dtype.type(1)
    zero = D.dtype.type(0)
    if code == SIGMOID:
        for i in range(n):
            for j in range(width):
                D[i, j] *= H[i, j] * (one - H[i, j])
    elif code == TANH:
        for i in range(n):
            for j in range(width):
                D[i, j] *= one - H[i, j] * H[i, j]
    elif code == RELU:
        for i in range(n):
            for j in range(width):
                D[i, j] = D[i, j] if H[i, j] > zero else zero
    elif code == LEAKY_RELU:
        slope = D.dtype.type(LEAKY_SLOPE)
        for i in range(n):
            for j in range(width):
                D[i, j] = D[i, j] if H[i, j] > zero else slope * D[i, j]
    elif code == ELU:
        for i in range(n):
            for j in range(width):
                D[i, j] = D[i, j] if H[i, j] > zero else D[i, j] * (H[i, j] + one)
    elif keeps_derivative(code):
        for i in range(n):
            for j in range(width):
                D[i, j] *= dH[i, j]


@nb.njit(**STRICT)
def all_finite(a):
    """Whether every entry of the C-contiguous array `a` is finite, in one vectorised pass: an entry is
    NaN or +-inf exactly when all its exponent bits are set, as in inf's own bit pattern. (Integer
    bits, since a float test such as sum(x - x) == 0 vectorises only with reassociation, which may
    fold it to 0.)"""
    flat = a.reshape(a.size)
    exponent = float_bits(a.dtype.type(np.inf))
    bad = 0
    for k in range(flat.size):
        bad |= (float_bits(flat[k]) & exponent) == exponent
    return bad == 0
