"""Writes tiny_mlp.pt, the TorchScript fixture of dalab-nn's backbone test, and prints the reference output.

    python3 make_torchscript.py   (PyTorch 2.13)

The module maps [n, 3] -> [n, 4]: y = tanh(x W^T + b) with W[i, j] = 0.1 (i + 1) - 0.05 j, b[i] = 0.01 i.
"""
import torch


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)
        with torch.no_grad():
            for i in range(4):
                for j in range(3):
                    self.fc.weight[i, j] = 0.1 * (i + 1) - 0.05 * j
                self.fc.bias[i] = 0.01 * i

    def forward(self, x):
        return torch.tanh(self.fc(x))


m = torch.jit.script(Tiny())
m.save("tiny_mlp.pt")
x = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
print(m(x).tolist())
