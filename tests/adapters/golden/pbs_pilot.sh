#!/bin/bash



#PBS -V

#PBS -l select=2:ncpus=32:mpiprocs=32
#PBS -l place=scatter:shared

#PBS -l walltime=1:0:0

#PBS -A myproject
#PBS -q debug

#PBS -l "filesystems=home:eagle"


#PBS -e /dev/null
#PBS -o /dev/null

#PBS -V


PSIJ_NODEFILE="$PBS_NODEFILE"
export PSIJ_NODEFILE


cd "/scratch/user/scalems_like/session.x/pilot.0000"

exec &>> "{work_directory}/psij/pbs/$PBS_JOBID.out"

/bin/bash {work_directory}/psij/{launcher_hash}/single_launch.sh {psij_job_id} '' '' '' /dev/null /scratch/user/scalems_like/session.x/pilot.0000/job.out /scratch/user/scalems_like/session.x/pilot.0000/job.err /bin/sh /scratch/user/scalems_like/session.x/pilot.0000/bootstrap.sh /scratch/user/scalems_like/session.x/pilot.0000 

echo "$?" > "{work_directory}/psij/pbs/$PBS_JOBID.ec"
