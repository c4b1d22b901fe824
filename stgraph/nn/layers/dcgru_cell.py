"""The diffusion convolutional GRU cell of DCRNN, built from :class:`DiffusionConv`."""

from __future__ import annotations

import torch
from torch import Tensor

from stgraph.nn.layers.diffusion_conv import DiffusionConv, DiffusionSupports


class DCGRUCell(torch.nn.Module):
    r"""The diffusion convolutional GRU cell of DCRNN (Li et al., ICLR 2018, eq. 3).

    .. math::
        \mathbf{r} &= \sigma(\Theta_r \star_{\mathcal{G}} [\mathbf{X}_t, \mathbf{H}_{t-1}] + b_r)\\
        \mathbf{u} &= \sigma(\Theta_u \star_{\mathcal{G}} [\mathbf{X}_t, \mathbf{H}_{t-1}] + b_u)\\
        \mathbf{C} &= \tanh(\Theta_C \star_{\mathcal{G}} [\mathbf{X}_t,
            \mathbf{r} \odot \mathbf{H}_{t-1}] + b_c)\\
        \mathbf{H}_t &= \mathbf{u} \odot \mathbf{H}_{t-1} + (1 - \mathbf{u}) \odot \mathbf{C}

    :math:`\star_{\mathcal{G}}` is :class:`DiffusionConv`. Being linear per channel, the
    convolution of a concatenation is split into one convolution of :math:`\mathbf{X}_t` (shared by
    the gates and the candidate, and computable for all steps at once with :meth:`input_part`) and
    one of the state. Gate biases start at 1 as in DCRNN's code.

    Args:
        in_channels (int): input features per node.
        hidden_channels (int): state size.
        K (int, optional): diffusion hops per direction. (default: :obj:`2`)

    Shapes:
        - **input:** :math:`(|\mathcal{V}|, F_{in})` or its :meth:`input_part`
          :math:`(|\mathcal{V}|, 3 F_{hid})`; state :math:`(|\mathcal{V}|, F_{hid})`
        - **output:** state :math:`(|\mathcal{V}|, F_{hid})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, K: int = 2) -> None:
        super().__init__()
        self.in_channels, self.hidden_channels, self.K = in_channels, hidden_channels, K
        h = hidden_channels
        self.conv_x = DiffusionConv(in_channels, 3 * h, K)
        self.conv_h = DiffusionConv(h, 2 * h, K, bias=False)
        self.conv_c = DiffusionConv(h, h, K, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in (self.conv_x, self.conv_h, self.conv_c):
            conv.reset_parameters()
        with torch.no_grad():
            self.conv_x.lin.bias[: 2 * self.hidden_channels].fill_(1.0)

    def input_part(self, x: Tensor, supports: DiffusionSupports) -> Tensor:
        """``conv_x`` of inputs ``[|V|, T, F_in]`` for all ``T`` steps at once -> ``[|V|, T, 3 F_hid]``."""
        n, t, f = x.shape
        d = self.conv_x.diffuse(x.reshape(n, t * f), supports)  # [n, (2K+1) * t * f]
        d = d.view(n, 2 * self.K + 1, t, f).transpose(1, 2).reshape(n, t, -1)
        return self.conv_x.lin(d)

    def forward(
        self, x: Tensor, h: Tensor, supports: DiffusionSupports, *, precomputed: bool = False
    ) -> Tensor:
        xg = x if precomputed else self.conv_x(x, supports)
        hid = self.hidden_channels
        ru = torch.sigmoid(xg[:, : 2 * hid] + self.conv_h(h, supports))
        r, u = ru[:, :hid], ru[:, hid:]
        c = torch.tanh(xg[:, 2 * hid :] + self.conv_c(r * h, supports))
        return u * h + (1.0 - u) * c

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, K={self.K})"
