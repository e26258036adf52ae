# A GPT sized for a CPU: 150 seconds of training on 2 cores, whatever the CPU; with AMX (bfloat16) that
# is about 3,300 steps and val_loss_full about 1.58 (README, Results); in float32, about 2,400 steps and 1.61.
# python gpt.py configs/gpt_cpu.py
out_dir = 'out/gpt_cpu'
device = 'cpu'
batch_size = 32
block_size = 64
n_layer = 3                # in the same time, 3 layers for 3,200 steps beat 4 for 2,700 (1.573 vs 1.595)
n_head = 4
n_embd = 128
dropout = 0.0              # too few steps to overfit: dropout would only slow learning
time_budget = 150.0        # seconds of training: the run settles its step count to fit and prints it
learning_rate = 4e-3       # a small model takes a large rate: at 1,800 steps 2e-3 gave 1.72, 4e-3 1.67, 6e-3 no better
min_lr = 4e-4
warmup_iters = 50
eval_interval = 700
eval_iters = 20
