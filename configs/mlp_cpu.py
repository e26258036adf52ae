# The MLP sized for a CPU: under a minute on 2 cores with AMX (bfloat16), about 2 minutes in float32;
# val_loss_full about 1.61 (README, Results).
# python mlp.py configs/mlp_cpu.py
out_dir = 'out/mlp_cpu'
device = 'cpu'
batch_size = 64
block_size = 16
n_embd = 32
n_hidden = 512
n_layer = 2
dropout = 0.0              # too few steps to overfit
max_iters = 5000
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 100
lr_decay_iters = 5000
eval_interval = 1000
eval_iters = 20
