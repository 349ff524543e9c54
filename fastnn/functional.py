"""fastnn.functional: stateless ops on NumPy float32 arrays, named and ordered as in
torch.nn.functional, each with its explicit backward. Keyword-only `out=`/`grad_*=`
buffers let layers reuse memory across steps."""
# linear and convolution, and convolution fused with the max pooling after it (fastnn/_conv.pxi)
# (algorithm=: see fastnn.set_conv_algorithm and fastnn.conv2d_algorithm; activation="relu":
# the relu after them, applied in cache)
from ._core import (conv2d, conv2d_backward, conv2d_max_pool2d,  # noqa: F401
                    conv2d_max_pool2d_backward, linear, linear_backward)
# pooling (fastnn/_pool.pxi)
from ._core import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d,
                    avg_pool2d_backward, max_pool2d, max_pool2d_backward,
                    max_pool2d_with_indices)
# batch and layer normalization (fastnn/_norm.pxi)
from ._core import batch_norm, batch_norm_backward, layer_norm, layer_norm_backward
# activations and dropout (fastnn/_activation.pxi)
from ._core import (dropout, elu, elu_backward, gelu, gelu_backward, leaky_relu,
                    leaky_relu_backward, log_softmax, log_softmax_backward, relu, relu_backward,
                    sigmoid, sigmoid_backward, silu, silu_backward, softmax, softmax_backward,
                    tanh, tanh_backward)
# merging: add (residual connections), concatenate (fastnn/_merge.pxi)
from ._core import add, concatenate, concatenate_backward
# losses (fastnn/_loss.pxi)
from ._core import (binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_backward,
                    cross_entropy, cross_entropy_backward, cross_entropy_with_grad, mse_loss,
                    mse_loss_backward)
