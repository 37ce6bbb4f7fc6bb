#!/bin/bash



#SBATCH --chdir="/scratch/user/scalems_like/session.x/pilot.0000"


#SBATCH --nodes=2

#SBATCH --ntasks=64

#SBATCH --ntasks-per-node=32




#SBATCH --time=1:0:0

#SBATCH --partition="debug"

#SBATCH --account="myproject"


#SBATCH --gpus-per-node="4"

#SBATCH -e /dev/null
#SBATCH -o /dev/null

#SBATCH --export=ALL


_PSIJ_PPN=32

_PSIJ_NC=`scontrol show hostnames | wc -l`

if [ "$_PSIJ_PPN" == "" ]; then
    if [ "$_PSIJ_NC" != "" ] && [ "$_PSIJ_PC" != "" ]; then
        _PSIJ_PPN=$((_PSIJ_PC/_PSIJ_NC))
    fi
fi

PSIJ_NODEFILE="{work_directory}/psij/slurm/$SLURM_JOB_ID.nodefile"
if [ "$_PSIJ_PPN" == "" ]; then
    scontrol show hostnames >"$PSIJ_NODEFILE"
else
    scontrol show hostnames | while read NODE; do for _ in $(seq 1 1 $_PSIJ_PPN); do echo "$NODE"; done; done > "$PSIJ_NODEFILE"
fi
export PSIJ_NODEFILE



exec &>> "{work_directory}/psij/slurm/$SLURM_JOB_ID.out"

/bin/bash {work_directory}/psij/{launcher_hash}/single_launch.sh {psij_job_id} '' '' '' /dev/null /scratch/user/scalems_like/session.x/pilot.0000/job.out /scratch/user/scalems_like/session.x/pilot.0000/job.err /bin/sh /scratch/user/scalems_like/session.x/pilot.0000/bootstrap.sh /scratch/user/scalems_like/session.x/pilot.0000 

echo "$?" > "{work_directory}/psij/slurm/$SLURM_JOB_ID.ec"
