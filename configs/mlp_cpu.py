# The MLP sized for a CPU: about 3 minutes on 2 cores (see the README's results table).
# python mlp.py configs/mlp_cpu.py
out_dir = 'out/mlp_cpu'
device = 'cpu'
batch_size = 64
block_size = 16
n_embd = 32
n_hidden = 512
n_layer = 2
dropout = 0.0
max_iters = 3000
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 100
lr_decay_iters = 3000
eval_interval = 500
eval_iters = 20
