# A GPT sized for a CPU: about 3 minutes on 2 cores (see the README's results table).
# python gpt.py configs/gpt_cpu.py
out_dir = 'out/gpt_cpu'
device = 'cpu'
batch_size = 32
block_size = 64
n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0              # too few steps to overfit: dropout would only slow learning
max_iters = 1800
learning_rate = 4e-3
min_lr = 4e-4
warmup_iters = 50
lr_decay_iters = 1800
eval_interval = 300
eval_iters = 20
