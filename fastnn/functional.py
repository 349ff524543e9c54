"""fastnn.functional: stateless ops on NumPy float32 arrays, named and ordered as in
torch.nn.functional, each with its explicit backward. Keyword-only `out=`/`grad_*=`
buffers let layers reuse memory across steps."""
# linear and convolution (fastnn/_conv.pxi)
from ._core import conv2d, conv2d_backward, linear, linear_backward  # noqa: F401
# pooling (fastnn/_pool.pxi)
# activations (fastnn/_activation.pxi)
# losses (fastnn/_loss.pxi)
