"""fastnn.functional: stateless ops on NumPy float32 arrays, named and ordered as in
torch.nn.functional, each with its explicit backward. Keyword-only `out=`/`grad_*=`
buffers let layers reuse memory across steps."""
# linear and convolution (fastnn/_conv.pxi)
# pooling (fastnn/_pool.pxi)
# activations (fastnn/_activation.pxi)
# losses (fastnn/_loss.pxi)
