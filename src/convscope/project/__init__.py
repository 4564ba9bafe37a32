"""convscope.project"""
